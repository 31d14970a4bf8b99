//! The web sign-in end to end, on the real binary: a password reset through
//! a real SMTP server on loopback (aiosmtpd), an OpenID Connect sign-in
//! (authorization code + PKCE) against a real provider on loopback
//! (oidc-provider-mock, built on Authlib), and the server's own log output
//! checked for personal data. `./scripts/test` installs both Python packages.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, socle};
use reqwest::blocking::{Client, RequestBuilder, Response};

const EMAIL: &str = "camille.martin@commune-a.fr";
const NAME: &str = "Camille Martin";
const OLD_PASSWORD: &str = "ancienne phrase de passe";
const NEW_PASSWORD: &str = "nouvelle phrase de passe 2026";
const OIDC_ONLY_EMAIL: &str = "dominique.durand@commune-a.fr";
const OIDC_ONLY_NAME: &str = "Dominique Durand";
const STRANGER_EMAIL: &str = "inconnu.total@ailleurs.fr";

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn python_tools_present() {
    let ok =
        Command::new("python3").args(["-c", "import aiosmtpd, oidc_provider_mock"]).status().is_ok_and(|s| s.success());
    assert!(ok, "the SMTP sink and OIDC provider are missing: `pip install aiosmtpd oidc-provider-mock` (./scripts/test does it)");
}

fn wait_port(port: u16, what: &str) {
    eventually(Duration::from_secs(30), what, || std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()));
}

/// A browser without JavaScript: cookies, no redirects followed.
struct Browser {
    http: Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, cookies: HashMap::new() }
    }

    fn send(&mut self, req: RequestBuilder) -> (u16, String, String) {
        let mut req = req.timeout(Duration::from_secs(30));
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", c.join("; "));
        }
        let res: Response = req.send().unwrap();
        for c in res.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (k, v) = c.split(';').next().unwrap().split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = res.status().as_u16();
        let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, location, res.text().unwrap())
    }

    fn get(&mut self, url: &str) -> (u16, String, String) {
        let req = self.http.get(url);
        self.send(req)
    }

    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
        let req = self.http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body.join("&"));
        self.send(req)
    }

    fn sign_in(&mut self, base: &str, email: &str, password: &str) -> (u16, String, String) {
        let (_, _, page) = self.get(&format!("{base}/connexion"));
        self.post(&format!("{base}/connexion"), &[("csrf", &csrf(&page)), ("email", email), ("password", password)])
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn csrf(page: &str) -> String {
    let start = page.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + 19;
    page[start..].split('"').next().unwrap().to_owned()
}

fn run_socle(data_dir: &Path, args: &[&str], stdin: Option<&str>) {
    let mut cmd = socle();
    cmd.arg("--data-dir").arg(data_dir).args(args).stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success(), "socle {args:?}");
}

/// Decodes the quoted-printable soft line breaks and `=3D` a mailer may use.
fn unfold_quoted_printable(s: &str) -> String {
    s.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

fn reset_link(maildir: &Path) -> (String, String) {
    let file = eventually(Duration::from_secs(30), "the reset mail", || {
        std::fs::read_dir(maildir.join("new")).ok()?.filter_map(Result::ok).map(|e| e.path()).next()
    });
    let mail = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let body = unfold_quoted_printable(&mail);
    let start = body.find("/mot-de-passe/").unwrap_or_else(|| panic!("no link in {mail}"));
    let scheme = body[..start].rfind("http://").unwrap();
    let link: String = body[scheme..].chars().take_while(|c| !c.is_whitespace()).collect();
    (link, mail)
}

#[test]
fn password_reset_by_mail_and_openid_connect_sign_in_leave_no_personal_data_in_logs() {
    python_tools_present();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let maildir = dir.path().join("mail");

    // The SMTP sink and the identity provider, real servers on loopback.
    let smtp_port = free_port();
    let _smtp = Process(
        Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{smtp_port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd"),
    );
    let op_port = free_port();
    let _op = Process(
        Command::new("python3")
            .args(["-m", "oidc_provider_mock", "--port", &op_port.to_string(), "--require-nonce", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m oidc_provider_mock"),
    );
    let issuer = format!("http://127.0.0.1:{op_port}");
    wait_port(smtp_port, "the SMTP sink");
    wait_port(op_port, "the OpenID provider");

    // An organisation and two people: one with a password, one who only uses the provider.
    run_socle(
        &data,
        &["org", "create", "--id", "commune-a", "--kind", "commune", "--name", "Commune A", "--code", "86001"],
        None,
    );
    run_socle(&data, &["user", "create", "--email", EMAIL, "--name", NAME, "--password-stdin"], Some(OLD_PASSWORD));
    run_socle(&data, &["user", "create", "--email", OIDC_ONLY_EMAIL, "--name", OIDC_ONLY_NAME], None);
    for e in [EMAIL, OIDC_ONLY_EMAIL] {
        run_socle(&data, &["user", "grant", "--email", e, "--org", "commune-a", "--role", "agent"], None);
    }

    // The server, with every log line at debug level captured.
    let log_path: PathBuf = dir.path().join("socle.log");
    let mut cmd = socle();
    cmd.env("SOCLE_LOG__FILTER", "debug")
        .env("SOCLE_SMTP__HOST", "127.0.0.1")
        .env("SOCLE_SMTP__PORT", smtp_port.to_string())
        .env("SOCLE_SMTP__FROM", "Socle <ne-pas-repondre@socle.test>")
        .env("SOCLE_SMTP__SECURITY", "none")
        .env("SOCLE_OIDC__ISSUER", &issuer)
        .env("SOCLE_OIDC__CLIENT_ID", "socle-test")
        .env("SOCLE_OIDC__CLIENT_SECRET", "secret-de-test")
        .env("SOCLE_OIDC__LABEL", "Keycloak de test")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut server = Process(cmd.spawn().unwrap());
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let base = loop {
        let line = lines.next().expect("socle printed its address").unwrap();
        if let Some(i) = line.find("http://") {
            break line[i..].split_whitespace().next().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60));
    };
    let mut b = Browser::new();

    // Password sign-in, wrong then right.
    assert_eq!(b.sign_in(&base, EMAIL, "pas le bon mot de passe").0, 422);
    assert_eq!(b.sign_in(&base, EMAIL, OLD_PASSWORD).0, 303);
    let (status, _, account) = b.get(&format!("{base}/compte"));
    assert_eq!(status, 200);
    assert!(account.contains(EMAIL) && account.contains(NAME));
    let (_, _, _) = b.post(&format!("{base}/deconnexion"), &[("csrf", &csrf(&account))]);

    // Forgotten password: the mail arrives at the SMTP sink; the link works once.
    let mut asker = Browser::new();
    let (_, _, page) = asker.get(&format!("{base}/mot-de-passe-oublie"));
    let (status, _, sent) =
        asker.post(&format!("{base}/mot-de-passe-oublie"), &[("csrf", &csrf(&page)), ("email", &EMAIL.to_uppercase())]);
    assert_eq!(status, 200);
    assert!(sent.contains("Si un compte correspond"));
    let (link, mail) = reset_link(&maildir);
    assert!(mail.contains(&format!("To: {EMAIL}")) || mail.contains(&format!("<{EMAIL}>")), "{mail}");
    assert!(mail.contains("From: Socle <ne-pas-repondre@socle.test>"), "{mail}");
    assert!(link.starts_with(&format!("{base}/mot-de-passe/")), "{link}");
    let (status, _, form) = asker.get(&link);
    assert_eq!(status, 200, "{form}");
    let token = csrf(&form);
    let (status, _, _) = asker.post(&link, &[("csrf", &token), ("password", NEW_PASSWORD), ("confirm", "autre chose")]);
    assert_eq!(status, 422);
    let (status, location, _) =
        asker.post(&link, &[("csrf", &token), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)]);
    assert_eq!((status, location.as_str()), (303, "/connexion?info=mot-de-passe"));
    assert_eq!(asker.get(&link).0, 404, "a reset link works once");
    assert_eq!(b.sign_in(&base, EMAIL, OLD_PASSWORD).0, 422, "the old password is gone");
    assert_eq!(b.sign_in(&base, EMAIL, NEW_PASSWORD).0, 303);
    // An unknown address gets the same page and no mail.
    let (_, _, page) = asker.get(&format!("{base}/mot-de-passe-oublie"));
    let (_, _, same) =
        asker.post(&format!("{base}/mot-de-passe-oublie"), &[("csrf", &csrf(&page)), ("email", STRANGER_EMAIL)]);
    assert_eq!(same, sent);

    // OpenID Connect: the provider vouches for a verified address of a Socle user.
    let http = Client::new();
    for (sub, email, name) in
        [("sub-dominique", OIDC_ONLY_EMAIL, OIDC_ONLY_NAME), ("sub-stranger", STRANGER_EMAIL, "Personne")]
    {
        let claims = serde_json::json!({ "email": email, "email_verified": true, "name": name });
        let res = http.put(format!("{issuer}/users/{sub}")).json(&claims).send().unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }
    let oidc_sign_in = |b: &mut Browser, sub: &str| -> (u16, String) {
        let (_, _, login) = b.get(&format!("{base}/connexion"));
        assert!(login.contains("Se connecter avec Keycloak de test"));
        let (status, authorize, _) = b.get(&format!("{base}/connexion/oidc?retour=/compte"));
        assert_eq!(status, 303);
        assert!(authorize.starts_with(&format!("{issuer}/oauth2/authorize?")), "{authorize}");
        for part in
            ["response_type=code", "code_challenge_method=S256", "code_challenge=", "state=", "nonce=", "scope=openid"]
        {
            assert!(authorize.contains(part), "{part} in {authorize}");
        }
        // The person picks an identity at the provider, which sends the browser back with a code.
        let (status, callback, page) = b.post(&authorize, &[("sub", sub)]);
        assert_eq!(status, 302, "{page}");
        assert!(callback.starts_with(&format!("{base}/connexion/oidc/retour?")), "{callback}");
        let (status, location, _) = b.get(&callback);
        assert_eq!(status, 303);
        // Replaying the same callback fails: the state is single use.
        let (_, replay, _) = Browser::new().get(&callback);
        assert_eq!(replay, "/connexion?info=oidc-echec");
        (status, location)
    };
    let mut c = Browser::new();
    let (_, location) = oidc_sign_in(&mut c, "sub-dominique");
    assert_eq!(location, "/compte");
    let (status, _, account) = c.get(&format!("{base}/compte"));
    assert_eq!(status, 200);
    assert!(account.contains(OIDC_ONLY_EMAIL) && account.contains(OIDC_ONLY_NAME), "{account}");
    // Signed in again, the link is by subject now.
    let mut c2 = Browser::new();
    assert_eq!(oidc_sign_in(&mut c2, "sub-dominique").1, "/compte");
    // Someone Socle does not know is refused (no self-registration by default).
    let mut d = Browser::new();
    assert_eq!(oidc_sign_in(&mut d, "sub-stranger").1, "/connexion?info=oidc-inconnu");
    assert!(!d.cookies.keys().any(|k| k.contains("session")));
    let (_, forged, _) = Browser::new().get(&format!("{base}/connexion/oidc/retour?state=forged&code=forged"));
    assert_eq!(forged, "/connexion?info=oidc-echec");

    // The logs: plenty of lines, not one e-mail address or name.
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().count() > 50, "debug logs were captured:\n{log}");
    for needle in
        ["signed in with a password", "password reset", "signed in through OpenID Connect", "reset mail handed"]
    {
        assert!(log.contains(needle), "{needle} is logged");
    }
    for personal in
        [EMAIL, NAME, OIDC_ONLY_EMAIL, OIDC_ONLY_NAME, STRANGER_EMAIL, "camille", "dominique", "Durand", "Martin"]
    {
        assert!(!log.to_lowercase().contains(&personal.to_lowercase()), "{personal} appears in the log");
    }
    let address = log
        .split(|c: char| c.is_whitespace() || "\"'<>(),;=".contains(c))
        .find(|w| w.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.')));
    assert_eq!(address, None, "an e-mail address is in the log");
}
