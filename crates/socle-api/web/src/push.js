// "Recevoir les alertes sur ce téléphone": registers the service worker,
// subscribes to Web Push with Socle's VAPID key and gives the subscription to
// Socle. The outcome goes to a status line (and data-state / data-error, which
// the browser tests read).
function keyBytes(base64url) {
  const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4);
  const raw = atob(padded);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

// A browser without a reachable push service may never settle subscribe().
const PUSH_SERVICE_WAIT_MS = 20000;

function withTimeout(promise, ms) {
  return Promise.race([
    promise,
    new Promise((_, reject) =>
      setTimeout(() => {
        const e = new Error(`the push service did not answer within ${ms / 1000} s`);
        e.name = "TimeoutError";
        reject(e);
      }, ms),
    ),
  ]);
}

export function initPush(doc) {
  const button = doc.getElementById("recevoir-alertes");
  if (!button) return;
  const status = doc.getElementById("push-etat");
  const say = (state, text, error) => {
    button.dataset.state = state;
    if (error) button.dataset.error = error;
    if (status) status.textContent = text;
  };
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    say("unsupported", button.dataset.unsupported);
    button.disabled = true;
    return;
  }
  button.addEventListener("click", async () => {
    say("working", button.dataset.working);
    try {
      const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      await withTimeout(navigator.serviceWorker.ready, 10000);
      button.dataset.worker = "registered";
      const res = await fetch("/api/v1/push/vapid-public-key", { credentials: "same-origin" });
      if (!res.ok) throw new Error(`vapid key: HTTP ${res.status}`);
      const { publicKey } = await res.json();
      button.dataset.key = publicKey;
      button.dataset.stage = "subscribe";
      const subscription = await withTimeout(
        registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) }),
        PUSH_SERVICE_WAIT_MS,
      );
      button.dataset.stage = "post";
      const saved = await fetch("/api/v1/push/subscriptions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": button.dataset.csrf },
        body: JSON.stringify(subscription.toJSON()),
      });
      if (!saved.ok) throw new Error(`subscription: HTTP ${saved.status}`);
      say("subscribed", button.dataset.done);
    } catch (e) {
      say("failed", `${button.dataset.failed} (${e.name}: ${e.message})`, `${e.name}: ${e.message}`);
    }
  });
}
