//! `wire setup` on fixture config files in a temporary HOME and project: Claude Code (user
//! file with other servers and settings, an empty project `.mcp.json`), a malformed Claude
//! Desktop file, Cursor with no file yet, and VS Code's JSONC with comments and trailing
//! commas. The dry run changes nothing; `--apply` adds exactly the `wire` entry (snapshots of
//! every file), keeps a backup, and leaves the malformed file alone; a second `--apply`
//! changes nothing; `--remove --apply` gives back the original text of the files it edited.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CLAUDE: &str = r#"{
  "numStartups": 4,
  "mcpServers": {
    "github": {
      "type": "stdio",
      "command": "gh-mcp",
      "args": []
    }
  },
  "projects": {
    "/src/x": {
      "allowedTools": []
    }
  }
}
"#;

const VSCODE: &str = r#"{
	// Servers I use every day.
	"servers": {
		"memory": {
			"command": "npx",
			"args": ["-y", "@modelcontextprotocol/server-memory"], /* pinned */
		},
	},
	"inputs": [],
}
"#;

const DESKTOP_MALFORMED: &str = "{ \"mcpServers\": { \"broken\": } }\n";

struct Fixture {
    root: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().expect("tempdir");
        let f = Fixture { root };
        let home = f.home();
        std::fs::create_dir_all(home.join(".config/Claude")).expect("dirs");
        std::fs::create_dir_all(home.join(".config/Code/User")).expect("dirs");
        std::fs::create_dir_all(home.join(".cursor")).expect("dirs");
        std::fs::create_dir_all(f.project()).expect("dirs");
        std::fs::write(home.join(".claude.json"), CLAUDE).expect("write");
        std::fs::write(home.join(".config/Code/User/mcp.json"), VSCODE).expect("write");
        std::fs::write(
            home.join(".config/Claude/claude_desktop_config.json"),
            DESKTOP_MALFORMED,
        )
        .expect("write");
        std::fs::write(f.project().join(".mcp.json"), "").expect("write");
        f
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    fn project(&self) -> PathBuf {
        self.root.path().join("project")
    }

    fn files(&self) -> Vec<(&'static str, PathBuf)> {
        let h = self.home();
        vec![
            ("claude_user", h.join(".claude.json")),
            ("claude_project", self.project().join(".mcp.json")),
            (
                "claude_desktop",
                h.join(".config/Claude/claude_desktop_config.json"),
            ),
            ("cursor", h.join(".cursor/mcp.json")),
            ("vscode", h.join(".config/Code/User/mcp.json")),
        ]
    }

    fn read(&self, p: &Path) -> String {
        std::fs::read_to_string(p).map_or_else(|_| "<no file>".into(), |s| self.scrub(&s))
    }

    fn scrub(&self, s: &str) -> String {
        s.replace(env!("CARGO_BIN_EXE_wire"), "[WIRE]")
            .replace(&self.root.path().display().to_string(), "[ROOT]")
    }

    /// `wire setup <args>` (JSON on stdout); its exit code and document.
    fn setup(&self, args: &[&str]) -> (i32, Value) {
        let out = Command::new(env!("CARGO_BIN_EXE_wire"))
            .arg("setup")
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("WIRE_HOME", self.root.path().join("wire-home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .current_dir(self.project())
            .output()
            .expect("run wire setup");
        let text = self.scrub(&String::from_utf8_lossy(&out.stdout));
        let v = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "not one JSON document ({e}): {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    fn snapshot_files(&self, stage: &str) {
        for (name, p) in self.files() {
            insta::assert_snapshot!(format!("setup_{stage}_{name}"), self.read(&p));
        }
    }
}

#[test]
fn setup_merges_one_entry_idempotently_and_leaves_malformed_files_alone() {
    let f = Fixture::new();
    let before: Vec<String> = f.files().iter().map(|(_, p)| f.read(p)).collect();

    // The dry run says what it would do and touches nothing. A malformed file makes the exit
    // code 2 (something needs the operator), but the others are still reported.
    let (code, plan) = f.setup(&[]);
    assert_eq!(code, 2, "{plan}");
    insta::assert_json_snapshot!("setup_dry_run", plan);
    let now: Vec<String> = f.files().iter().map(|(_, p)| f.read(p)).collect();
    assert_eq!(now, before, "the dry run changed a file");

    let (code, applied) = f.setup(&["--apply"]);
    assert_eq!(code, 2, "{applied}");
    insta::assert_json_snapshot!("setup_apply", applied);
    f.snapshot_files("applied");
    assert_eq!(
        std::fs::read_to_string(f.home().join(".config/Claude/claude_desktop_config.json"))
            .expect("read"),
        DESKTOP_MALFORMED,
        "the malformed file was touched"
    );
    assert_eq!(
        std::fs::read_to_string(f.home().join(".claude.json.wire-backup")).expect("backup"),
        CLAUDE
    );
    assert_eq!(
        std::fs::read_to_string(f.home().join(".config/Code/User/mcp.json.wire-backup"))
            .expect("backup"),
        VSCODE
    );
    // Every other entry is still there, as it was.
    let claude: Value = serde_json::from_str(
        &std::fs::read_to_string(f.home().join(".claude.json")).expect("read"),
    )
    .expect("still JSON");
    assert_eq!(claude["mcpServers"]["github"]["command"], "gh-mcp");
    assert_eq!(claude["numStartups"], 4);
    assert_eq!(claude["mcpServers"]["wire"]["args"][0], "mcp");

    // Idempotent: a second run changes nothing.
    let after_apply: Vec<String> = f.files().iter().map(|(_, p)| f.read(p)).collect();
    let (_, again) = f.setup(&["--apply"]);
    for row in again["hosts"].as_array().expect("hosts") {
        assert!(
            matches!(row["action"].as_str(), Some("unchanged" | "malformed")),
            "second run: {row}"
        );
        assert_eq!(row["applied"], false, "{row}");
    }
    let now: Vec<String> = f.files().iter().map(|(_, p)| f.read(p)).collect();
    assert_eq!(now, after_apply, "the second run changed a file");

    // Remove gives back the files it edited, byte for byte.
    let (_, removed) = f.setup(&["--apply", "--remove"]);
    insta::assert_json_snapshot!("setup_remove", removed);
    assert_eq!(
        std::fs::read_to_string(f.home().join(".claude.json")).expect("read"),
        CLAUDE
    );
    assert_eq!(
        std::fs::read_to_string(f.home().join(".config/Code/User/mcp.json")).expect("read"),
        VSCODE
    );
    f.snapshot_files("removed");
    let (_, nothing) = f.setup(&["--remove"]);
    for row in nothing["hosts"].as_array().expect("hosts") {
        assert!(
            matches!(row["action"].as_str(), Some("absent" | "malformed")),
            "{row}"
        );
    }
}
