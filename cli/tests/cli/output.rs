//! Snapshots of what operators and agents read.

use insta::{assert_json_snapshot, assert_snapshot};

use crate::Env;

#[test]
fn whoami_prose_emoji_ascii_and_json() {
    let env = Env::with_alice();
    let (prose, code) = env.prose(&["whoami"], &[]);
    assert_eq!(code, 0);
    assert_snapshot!("whoami_prose", prose);
    let (ascii, _) = env.prose(&["whoami"], &[("WIRE_EMOJI", "off")]);
    assert_snapshot!("whoami_prose_ascii", ascii);
    // A non-UTF-8 locale falls back to ASCII tags as well.
    let (c_locale, _) = env.prose(&["whoami"], &[("LANG", "C")]);
    assert_eq!(c_locale, ascii);
    let (json, code) = env.json(&["whoami"]);
    assert_eq!(code, 0);
    assert_json_snapshot!("whoami_json", json, { ".created_ms" => "[ms]" });
    // --json forces JSON even where prose was asked for.
    let forced = env.run(&["whoami", "--json"], &[("WIRE_NO_AUTO_JSON", "1")]);
    assert!(serde_json::from_slice::<serde_json::Value>(&forced.stdout).is_ok());
}

#[test]
fn identity_show_and_rename() {
    let env = Env::with_alice();
    let (prose, _) = env.prose(&["identity", "show"], &[]);
    assert_snapshot!("identity_show_prose", prose);
    let (json, _) = env.json(&["identity", "show"]);
    assert_json_snapshot!("identity_show_json", json, { ".created_ms" => "[ms]" });

    let (renamed, code) = env.prose(
        &[
            "identity",
            "rename",
            "--name",
            "foxtrot-meadow",
            "--emoji",
            "🦊",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert_snapshot!("identity_rename_prose", renamed);
    let (json, _) = env.json(&["whoami"]);
    assert_eq!(json["nickname"], "foxtrot-meadow");
    assert_eq!(json["emoji"], "🦊");
    assert_eq!(json["tag"], "fox");
    assert_eq!(json["renamed"], true);
    // The DID does not change with a rename.
    let (before, _) = Env::with_alice().json(&["whoami"]);
    assert_eq!(json["did"], before["did"]);
    let (reset, _) = env.json(&["identity", "rename", "--reset"]);
    assert_eq!(reset["identity"]["nickname"], before["nickname"]);
}

#[test]
fn verify_clean_store_prose_and_json() {
    let env = Env::with_alice();
    env.run(&["identity", "rename", "--name", "quiet-harbor"], &[]);
    let (prose, code) = env.prose(&["verify"], &[]);
    assert_eq!(code, 0);
    assert_snapshot!("verify_prose", prose);
    let (json, code) = env.json(&["verify"]);
    assert_eq!(code, 0);
    assert_json_snapshot!("verify_json", json);
}

#[test]
fn here_and_identity_list_show_every_session() {
    let env = Env::with_alice();
    let out = env.run(&["init", "bob", "--offline", "--session", "work"], &[]);
    assert!(out.status.success());
    let (here, _) = env.prose(&["here"], &[]);
    assert!(here.contains("Sister sessions on this machine:"), "{here}");
    assert!(
        here.lines()
            .any(|l| l.trim_start().starts_with("work") && l.contains("not paired")),
        "{here}"
    );
    let (list, _) = env.json(&["identity", "list"]);
    let names: Vec<_> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["session"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["default", "work"]);
    let (whoami, _) = env.json(&["whoami", "--session", "work"]);
    assert_eq!(whoami["handle"], "bob");
    assert_eq!(whoami["session"]["rule"], "--session");
    let out = env.run(&["whoami"], &[("WIRE_SESSION", "work")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["session"]["rule"], "WIRE_SESSION");
}

#[test]
fn completions_cover_the_verbs_and_parse_in_bash() {
    let env = Env::empty();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell], &[]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8_lossy(&out.stdout);
        for verb in ["pair-all-local", "send", "service", "dial"] {
            assert!(script.contains(verb), "{shell} completions lack {verb}");
        }
        if shell == "bash" {
            let path = env.home.path().join("wire.bash");
            std::fs::write(&path, script.as_bytes()).expect("write");
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .output()
                .expect("bash");
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let bad = env.run(&["completions", "tcsh"], &[]);
    assert!(!bad.status.success());
}

/// `wire args` on a real terminal (a pty from util-linux `script`): what the terminal shows.
fn on_a_terminal(env: &Env, args: &str, vars: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} {args}", env!("CARGO_BIN_EXE_wire")),
        "/dev/null",
    ])
    .env_clear()
    .env("WIRE_HOME", env.home.path())
    .env("WIRE_NO_DAEMON", "true")
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .env("LANG", "C.UTF-8")
    .env("TERM", "xterm-256color")
    .stdin(std::process::Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("util-linux `script` runs wire on a pty");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let env = Env::with_alice();
    let tty = on_a_terminal(&env, "whoami", &[]);
    assert!(tty.contains("\x1b["), "a terminal gets colour: {tty:?}");
    let no_color = on_a_terminal(&env, "whoami", &[("NO_COLOR", "1")]);
    assert!(!no_color.contains("\x1b["), "NO_COLOR: {no_color:?}");
    assert!(
        no_color.contains("amiable") || no_color.contains('('),
        "{no_color:?}"
    );
    let (piped, _) = env.prose(&["whoami"], &[]);
    assert!(
        !piped.contains('\x1b'),
        "a pipe never gets colour: {piped:?}"
    );
}

#[test]
fn wire_verbose_adds_diagnostics_on_stderr_and_none_by_default_off_a_terminal() {
    let env = Env::with_alice();
    let quiet = env.run(&["whoami"], &[]);
    assert!(quiet.status.success());
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "no chatter off a terminal"
    );
    let verbose = env.run(&["whoami"], &[("WIRE_VERBOSE", "1")]);
    let err = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        err.contains("wire: session default (chosen by default)")
            && err.contains("running in this process"),
        "{err}"
    );
    // stdout stays exactly one JSON document.
    assert!(serde_json::from_slice::<serde_json::Value>(&verbose.stdout).is_ok());
}
