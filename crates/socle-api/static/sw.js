// Socle's service worker: shows the alerts pushed to this browser (Web Push,
// RFC 8291: the browser decrypts, this receives the JSON Socle sent:
// {title, body, url, alertId, deliveryId}) and opens the alert on a click.
// Nothing is cached: the hypervisor's pages are always fresh.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (_) {
    data = { title: "Socle", body: event.data ? event.data.text() : "" };
  }
  const title = data.title || "Socle";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: data.body || "",
      tag: data.deliveryId || data.alertId || undefined,
      icon: "/icone.svg",
      data: { url: data.url || "/alertes" },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/alertes";
  event.waitUntil(self.clients.openWindow(url));
});
