//! Administration from the command line, then the API with the token it issued.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{get_json, get_json_as, socle, Running};

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd: Command = socle();
    cmd.arg("--data-dir").arg(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "socle {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn organisations_users_and_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(
        d,
        &[
            "org",
            "create",
            "--id",
            "syndicat-test",
            "--kind",
            "syndicat",
            "--name",
            "Syndicat test",
            "--code",
            "258603471",
        ],
        None,
    );
    run(
        d,
        &[
            "org",
            "create",
            "--id",
            "commune-test",
            "--kind",
            "commune",
            "--name",
            "Commune test",
            "--code",
            "86001",
            "--parent",
            "syndicat-test",
        ],
        None,
    );
    assert!(run(d, &["org", "list"], None).contains("commune-test\tcommune\t86001\tsyndicat-test"));
    run(
        d,
        &["user", "create", "--email", "Admin@Commune-Test.fr", "--name", "Admin", "--password-stdin"],
        Some("un mot de passe solide\n"),
    );
    run(d, &["user", "grant", "--email", "admin@commune-test.fr", "--org", "commune-test", "--role", "admin"], None);
    assert!(run(d, &["user", "list"], None).contains("admin@commune-test.fr\tAdmin\tcommune-test:admin"));
    let secret = run(
        d,
        &["token", "create", "--email", "admin@commune-test.fr", "--org", "commune-test", "--scope", "admin"],
        None,
    );
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("socle_pat_"));

    let mut cmd = socle();
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(d).arg("serve");
    let server = Running::spawn(cmd);
    let base = server.base_url(Duration::from_secs(60));
    let (status, users) = get_json_as(&format!("{base}/api/v1/users"), &secret);
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["items"][0]["email"], "admin@commune-test.fr");
    assert_eq!(get_json(&format!("{base}/api/v1/users")).0, 401);
    let (_, audit) = get_json_as(&format!("{base}/api/v1/audit"), &secret);
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"membership.grant")
            && actions.contains(&"token.create")
            && actions.contains(&"personal.read"),
        "{actions:?}"
    );

    let id = run(d, &["token", "list"], None).lines().next().unwrap().split('\t').next().unwrap().to_owned();
    run(d, &["token", "revoke", &id], None);
    assert_eq!(get_json_as(&format!("{base}/api/v1/users"), &secret).0, 401, "a revoked token stops working at once");

    // Too short a password is refused.
    let out = socle()
        .arg("--data-dir")
        .arg(d)
        .args(["user", "create", "--email", "x@commune-test.fr", "--name", "X", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"court\n")?;
            c.wait()
        })
        .unwrap();
    assert!(!out.success());
}
