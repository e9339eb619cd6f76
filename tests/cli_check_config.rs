//! `xdhcp6 check-config` accepts the shipped examples and rejects a broken file with the key.

use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xdhcp6"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run xdhcp6");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn examples_pass() {
    for name in ["minimal.toml", "isp-edge.toml"] {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/examples")
            .join(name);
        let (ok, text) = check(&p);
        assert!(ok, "{name}: {text}");
        assert!(text.contains("OK"), "{text}");
    }
}

#[test]
fn broken_config_fails_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("xdhcp6-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        "[server]\ninterfaces = [\"eth0\"]\n\n[[link]]\nname = \"lan\"\nsubnet = \"2001:db8:1::/64\"\n\
         address_pools = [{ first = \"2001:db8:1::ffff\", last = \"2001:db8:1::1\" }]\n",
    )
    .unwrap();
    let (ok, text) = check(&p);
    assert!(!ok, "a reversed pool range was accepted: {text}");
    assert!(
        text.contains("link[0].address_pools[0]"),
        "error does not name the key: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
