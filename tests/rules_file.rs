//! Rules file (SPEC §3): the example loads; bad files fail with file, rule, problem and fix.

use std::path::Path;

use leadscore::rules::{url_path, Rules};

const HEAD: &str = "name = \"x\"\n[threshold]\nsales_ready = 100.0\n";

fn err(body: &str) -> String {
    Rules::parse(
        Path::new("rules/bad.toml"),
        format!("{HEAD}{body}").as_bytes(),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn the_example_rules_load() {
    let r = leadscore::rules_file::load(Path::new("examples/rules.toml")).unwrap();
    assert!(r.version.starts_with("default+"));
    assert_eq!(r.version.len(), "default+".len() + 8);
    assert_eq!(r.sales_ready, 120.0);
}

#[test]
fn defaults() {
    let r = Rules::parse(Path::new("r"), HEAD.as_bytes()).unwrap();
    assert_eq!(r.rearm_below, 50.0);
    assert_eq!(r.min_fit, 0.0);
}

#[test]
fn rules_version_hashes_the_file_bytes() {
    let a = Rules::parse(Path::new("r"), HEAD.as_bytes()).unwrap();
    let b = Rules::parse(Path::new("r"), format!("{HEAD}\n# comment\n").as_bytes()).unwrap();
    assert_ne!(a.version, b.version);
    // sha256("name = \"x\"\n[threshold]\nsales_ready = 100.0\n") starts with these 8 hex digits.
    use sha2::Digest;
    let want = sha2::Sha256::digest(HEAD.as_bytes());
    assert_eq!(
        a.version,
        format!(
            "x+{:02x}{:02x}{:02x}{:02x}",
            want[0], want[1], want[2], want[3]
        )
    );
}

#[test]
fn bad_files_name_the_file_the_rule_the_problem_and_the_fix() {
    let rule = |name: &str, extra: &str| {
        format!("[[engagement]]\nname = \"{name}\"\non = \"page_view\"\npoints = 1.0\n{extra}\n")
    };
    let cases = [
        (
            format!("{}{}", rule("a", ""), rule("a", "")),
            "duplicate rule name \"a\"",
        ),
        (
            rule("a", "url_regex = \"(\""),
            "[[engagement]] #1 \"a\": field `url_regex`: invalid regex",
        ),
        (
            rule("a", "").replace("page_view", "pageview"),
            "unknown event type `pageview`",
        ),
        (
            rule("a", "half_life = \"7 fortnights\""),
            "field `half_life`: invalid duration",
        ),
        (
            rule("a", "max_per_day = 0"),
            "field `max_per_day` must be ≥ 1",
        ),
        (
            rule("a", "campaign_id = \"c\""),
            "field `campaign_id` can never match page_view events",
        ),
        (
            rule("a", "url_prefix = \"/p\""),
            "unknown field `url_prefix`",
        ),
        (
            "[[fit]]\nname = \"f\"\nfield = \"x\"\npoints = 1.0\n".into(),
            "needs exactly one condition, got 0",
        ),
        (
            "[[fit]]\nname = \"f\"\nfield = \"x\"\nequals = \"a\"\nexists = true\npoints = 1.0\n"
                .into(),
            "needs exactly one condition, got 2",
        ),
        (
            "[[fit]]\nname = \"f\"\nfield = \"x\"\nrange = [5, 1]\npoints = 1.0\n".into(),
            "field `range` must be [low, high]",
        ),
        ("[decay]\nhalf_life = \"0s\"\n".into(), "must be positive"),
        (
            "[bot_filter]\nuser_agent_contains = [\"\"]\n".into(),
            "would match every user agent",
        ),
    ];
    for (body, want) in cases {
        let e = err(&body);
        assert!(e.contains("rules file rules/bad.toml"), "{e}");
        assert!(e.contains(want), "got: {e}\nwant: {want}");
        assert!(e.contains("fix: "), "{e}");
    }
    let e = Rules::parse(
        Path::new("r.toml"),
        b"[threshold]\nsales_ready = 100.0\nrearm_below = 100.0\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("rearm_below (100) must be below sales_ready (100)"),
        "{e}"
    );
    let e = leadscore::rules_file::load(Path::new("does/not/exist.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does/not/exist.toml") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn url_paths() {
    assert_eq!(url_path("https://x.io/pricing?plan=pro#top"), "/pricing");
    assert_eq!(url_path("https://x.io:8443/a/b"), "/a/b");
    assert_eq!(url_path("https://x.io"), "");
    assert_eq!(url_path("https://x.io?q=/pricing"), "");
    assert_eq!(url_path("/pricing#x"), "/pricing");
    assert_eq!(url_path("pricing"), "");
}
