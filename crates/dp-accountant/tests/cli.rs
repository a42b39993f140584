//! The `dp-accountant` binary: JSON output, and one-line errors with exit status 2.

use std::path::PathBuf;
use std::process::{Command, Output};

use dp_accountant::{AccountantKind, DpEvent, NeighbouringRelation};
use serde_json::Value;

/// The exit status the tool uses for bad input.
const EXIT_BAD_INPUT: i32 = 2;

/// Agreement required between the CLI and the library (both print shortest round-trip
/// floats, so this is exact in practice).
const RELATIVE_TOLERANCE: f64 = 1e-12;

const MNIST: [&str; 6] = [
    "--noise-multiplier",
    "1.1",
    "--sampling-probability",
    "0.004266666666666667",
    "--steps",
    "14063",
];

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dp-accountant"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(args: &[&str]) -> Value {
    let output = run(args);
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one line of JSON: {stdout}"
    );
    serde_json::from_str(&stdout).expect("one JSON object")
}

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

fn assert_bad_input(args: &[&str]) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(EXIT_BAD_INPUT),
        "{args:?}: status {:?}, stderr {stderr}",
        output.status
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line on stderr, got {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
}

#[test]
fn epsilon_json_reports_inputs_order_and_bounds() {
    let mut args = vec![
        "epsilon",
        "--accountant",
        "rdp",
        "--delta",
        "1e-5",
        "--json",
    ];
    args.extend(MNIST);
    let rdp = json(&args);
    assert_eq!(rdp["accountant"], "rdp");
    assert_eq!(number(&rdp, "steps"), 14063.0);
    assert_eq!(number(&rdp, "delta"), 1e-5);
    assert_eq!(rdp["guarantee"], "upper_bound");
    let library =
        dp_accountant::dp_sgd_epsilon(AccountantKind::Rdp, 1.1, 256.0 / 60000.0, 14063, 1e-5)
            .expect("valid");
    assert!((number(&rdp, "epsilon") / library.epsilon - 1.0).abs() < RELATIVE_TOLERANCE);
    assert_eq!(Some(number(&rdp, "order")), library.optimal_order);

    args[2] = "pld";
    let pld = json(&args);
    assert!(number(&pld, "epsilon_lower") <= number(&pld, "epsilon"));
    assert!(pld.get("order").is_none());

    args[2] = "gdp";
    let gdp = json(&args);
    assert_eq!(gdp["guarantee"], "approximate");
    assert!(
        gdp["note"]
            .as_str()
            .is_some_and(|note| note.contains("APPROXIMATE"))
    );
}

#[test]
fn custom_orders_and_classic_conversion() {
    let mut args = vec![
        "epsilon",
        "--accountant",
        "rdp",
        "--delta",
        "1e-5",
        "--json",
        "--orders",
        "2,4,8,16,32",
        "--conversion",
        "classic",
    ];
    args.extend(MNIST);
    let report = json(&args);
    assert_eq!(report["conversion"], "classic");
    let order = number(&report, "order");
    assert!([2.0, 4.0, 8.0, 16.0, 32.0].contains(&order), "{order}");
}

#[test]
fn delta_noise_and_steps_commands() {
    let mut args = vec!["delta", "--accountant", "pld", "--epsilon", "2.5", "--json"];
    args.extend(MNIST);
    let delta = json(&args);
    let value = number(&delta, "delta");
    assert!(value > 0.0 && value < 1e-5, "{value}");

    let noise = json(&[
        "noise",
        "--accountant",
        "rdp",
        "--target-epsilon",
        "2",
        "--sampling-probability",
        "0.01",
        "--steps",
        "1000",
        "--delta",
        "1e-5",
        "--json",
    ]);
    let sigma = number(&noise, "noise_multiplier");
    let spent =
        dp_accountant::dp_sgd_epsilon(AccountantKind::Rdp, sigma, 0.01, 1000, 1e-5).expect("valid");
    assert!(spent.epsilon <= 2.0);

    let steps = json(&[
        "steps",
        "--accountant",
        "rdp",
        "--noise-multiplier",
        "1.1",
        "--target-epsilon",
        "3",
        "--sampling-probability",
        "0.01",
        "--delta",
        "1e-5",
        "--json",
    ]);
    assert!(number(&steps, "steps") >= 1.0);
}

fn ledger_file(name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "dp-accountant-cli-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&path, contents).expect("temp file");
    path
}

#[test]
fn ledger_command_matches_the_library() {
    let mut accountant = AccountantKind::Rdp.accountant(NeighbouringRelation::AddOrRemoveOne);
    let step = DpEvent::gaussian(1.1).poisson_sampled(0.01);
    for _ in 0..500 {
        accountant.compose(&step).expect("supported");
    }
    accountant
        .compose(&DpEvent::gaussian(0.9).poisson_sampled(0.02).repeated(300))
        .expect("supported");
    let path = ledger_file(
        "good",
        &serde_json::to_string(accountant.ledger()).expect("serializes"),
    );
    let report = json(&[
        "ledger",
        path.to_str().expect("utf-8 path"),
        "--delta",
        "1e-5",
        "--json",
    ]);
    let expected = accountant.epsilon(1e-5).expect("valid").epsilon;
    assert_eq!(
        number(&report, "epsilon").to_bits(),
        expected.to_bits(),
        "bit-for-bit through JSON"
    );
    assert_eq!(number(&report, "entries"), 2.0);
    std::fs::remove_file(path).ok();
}

#[test]
fn bad_input_is_one_line_and_status_2() {
    let base = |accountant: &'static str| -> Vec<&'static str> {
        let mut args = vec!["epsilon", "--accountant", accountant, "--delta", "1e-5"];
        args.extend(MNIST);
        args
    };
    let replace = |mut args: Vec<&'static str>, flag: &str, value: &'static str| {
        let index = args.iter().position(|a| *a == flag).expect("flag present");
        args[index + 1] = value;
        args
    };
    for accountant in ["rdp", "gdp", "pld"] {
        assert_bad_input(&replace(base(accountant), "--noise-multiplier", "NaN"));
        assert_bad_input(&replace(base(accountant), "--noise-multiplier", "0"));
        assert_bad_input(&replace(base(accountant), "--noise-multiplier", "-1"));
        assert_bad_input(&replace(base(accountant), "--sampling-probability", "0"));
        assert_bad_input(&replace(base(accountant), "--sampling-probability", "1.5"));
        assert_bad_input(&replace(base(accountant), "--sampling-probability", "nan"));
        assert_bad_input(&replace(base(accountant), "--delta", "0"));
        assert_bad_input(&replace(base(accountant), "--delta", "1"));
        assert_bad_input(&replace(base(accountant), "--delta", "NaN"));
        assert_bad_input(&replace(base(accountant), "--steps", "0"));
        assert_bad_input(&replace(base(accountant), "--steps", "-3"));
    }
    assert_bad_input(&replace(base("rdp"), "--accountant", "moments"));
    assert_bad_input(&["epsilon", "--accountant", "rdp", "--delta", "1e-5"]);
    let mut orders = base("rdp");
    orders.extend(["--orders", "0.5,2"]);
    assert_bad_input(&orders);
    let mut misplaced = base("pld");
    misplaced.extend(["--orders", "2,3"]);
    assert_bad_input(&misplaced);
    assert_bad_input(&[
        "noise",
        "--accountant",
        "gdp",
        "--target-epsilon",
        "1",
        "--sampling-probability",
        "0.01",
        "--steps",
        "100",
        "--delta",
        "1e-5",
    ]);
    assert_bad_input(&[
        "noise",
        "--accountant",
        "rdp",
        "--target-epsilon",
        "inf",
        "--sampling-probability",
        "0.01",
        "--steps",
        "100",
        "--delta",
        "1e-5",
    ]);
    assert_bad_input(&[
        "delta",
        "--accountant",
        "rdp",
        "--epsilon",
        "-1",
        "--noise-multiplier",
        "1",
        "--sampling-probability",
        "0.01",
        "--steps",
        "10",
    ]);
    assert_bad_input(&["frobnicate"]);
}

#[test]
fn malformed_ledgers_are_refused() {
    let cases = [
        ("not-json", "this is not json"),
        ("wrong-shape", r#"{"entries": 3}"#),
        (
            "bad-sigma",
            r#"{"neighbouring_relation":"add_or_remove_one","entries":[{"event":{"gaussian":{"noise_multiplier":-1.0}},"count":3}]}"#,
        ),
        (
            "zero-count",
            r#"{"neighbouring_relation":"add_or_remove_one","entries":[{"event":{"gaussian":{"noise_multiplier":1.0}},"count":0}]}"#,
        ),
    ];
    for (name, contents) in cases {
        let path = ledger_file(name, contents);
        assert_bad_input(&[
            "ledger",
            path.to_str().expect("utf-8 path"),
            "--delta",
            "1e-5",
        ]);
        std::fs::remove_file(path).ok();
    }
    assert_bad_input(&["ledger", "/nonexistent/ledger.json", "--delta", "1e-5"]);
}
