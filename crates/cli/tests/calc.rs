//! `thecal calc` as a user runs it: every subcommand, human and JSON output, bad input.

use std::process::{Command, Output};

use serde_json::Value;

fn thecal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_thecal"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run thecal")
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = thecal(&all);
    assert!(
        out.status.success() || out.status.code() == Some(4),
        "{out:?}"
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "one line expected: {text:?}"
    );
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
    text.trim_end().to_string()
}

#[test]
fn dose_ziconotide_lowest_rate_rx_003_rx_012() {
    let v = json(&[
        "calc",
        "dose",
        "--drug",
        "ziconotide",
        "--conc",
        "25mcg/mL",
        "--rate",
        "0.048mL/day",
    ]);
    assert_eq!(v["daily_dose_ng"], 1200);
    let out = thecal(&[
        "calc",
        "dose",
        "--drug",
        "ziconotide",
        "--conc",
        "25mcg/mL",
        "--rate",
        "0.048mL/day",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ziconotide 25 mcg/mL at 0.048 mL/day = 1.2 mcg/day"
    );
}

#[test]
fn dose_above_the_hard_limit_carries_a_note_rx_012() {
    let v = json(&[
        "calc",
        "dose",
        "--drug",
        "morphine",
        "--conc",
        "20 mg/mL",
        "--rate",
        "1.1 mL/day",
    ]);
    assert_eq!(v["daily_dose_ng"], 22_000_000);
    assert_eq!(
        v["notes"][0],
        "22 mg/day is above the recommended (soft) maximum 15 mg/day (PACC 2017, check)"
    );
    // Above the strongest labelled strength (Infumorph 25 mg/mL): a hard note.
    let v = json(&[
        "calc",
        "dose",
        "--drug",
        "morphine",
        "--conc",
        "30 mg/mL",
        "--rate",
        "0.1 mL/day",
    ]);
    assert_eq!(
        v["notes"][0],
        "30 mg/mL exceeds the hard limit 25 mg/mL (Infumorph label: 25 mg/mL, the strongest \
         labelled strength)"
    );
}

#[test]
fn rate_baclofen_rx_003_rx_012() {
    let v = json(&[
        "calc",
        "rate",
        "--drug",
        "baclofen",
        "--conc",
        "2000mcg/mL",
        "--dose",
        "500mcg/day",
    ]);
    assert_eq!(v["rate_nl_per_day"], 250_000);
    let v = json(&[
        "calc",
        "rate",
        "--drug",
        "ziconotide",
        "--conc",
        "100mcg/mL",
        "--dose",
        "1mcg/day",
    ]);
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("below a SynchroMed-class pump's lowest rate")
    );
}

#[test]
fn refill_baclofen_40_ml_rx_009_rx_012() {
    let v = json(&[
        "calc",
        "refill",
        "--capacity",
        "40mL",
        "--volume",
        "40mL",
        "--rate",
        "0.25mL/day",
        "--start",
        "2027-01-04T09:00",
    ]);
    // The pump's alarm at the programmed rate: 38 mL / 0.25 mL/day = 152 days.
    assert_eq!(v["hours_to_low_alarm"], 152 * 24);
    assert_eq!(v["hours_to_empty"], 160 * 24);
    // The default model is SynchroMed-class 40 mL, labelled ±14.5 %: at 0.28625 mL/day
    // 38 mL last 132.751 days (3186.03 h) and 40 mL 139.738 days (3353.7 h), so the
    // refill is due 132 days 18:01:34 after 2027-01-04T09:00.
    assert_eq!(v["over_delivery_permille"], 145);
    assert_eq!(v["worst_case_hours_to_low"], 3186);
    assert_eq!(v["worst_case_hours_to_empty"], 3353);
    assert_eq!(v["refill_by"], "2027-05-17T03:01:34");
    assert_eq!(v["limited_by"], "volume");
}

#[test]
fn refill_date_agrees_with_the_pump_status_rx_014() {
    use thecal_pump::profile::HardwareProfile;
    use thecal_rx::refill;
    // The pump core's next refill comes from the same function: 20 mL at 0.5 mL/day on
    // a 20 mL SynchroMed-class pump; threshold max(2 mL, 7 × 0.5 = 3.5 mL) = 3.5 mL;
    // 16.5 mL / (0.5 × 1.145 = 0.5725 mL/day) = 28.821 days = 691.7 h.
    let p = HardwareProfile::by_model("synchromed-20").unwrap();
    let due = refill::refill_due(
        "20 mL".parse().unwrap(),
        refill::low_reservoir(refill::DEFAULT_LOW_RESERVOIR, 7, "0.5 mL".parse().unwrap()),
        "0.5 mL".parse().unwrap(),
        p.over_delivery_permille,
    )
    .unwrap()
    .unwrap();
    assert_eq!(due.whole_hours(), 691);
    let v = json(&[
        "calc",
        "refill",
        "--model",
        "synchromed-20",
        "--volume",
        "20mL",
        "--rate",
        "0.5mL/day",
        "--start",
        "2027-01-04T09:00",
    ]);
    assert_eq!(v["worst_case_hours_to_low"], 691);
    assert_eq!(v["low_threshold_nl"], 3_500_000);
}

#[test]
fn refill_with_patient_boluses_and_ziconotide_stability_rx_009_rx_012() {
    let v = json(&[
        "calc",
        "refill",
        "--capacity",
        "40mL",
        "--volume",
        "40mL",
        "--rate",
        "0.25mL/day",
        "--low-alarm",
        "3mL",
        "--ptm-volume",
        "20uL",
        "--ptm-per-day",
        "4",
        "--drug",
        "ziconotide",
        "--diluted",
        "--start",
        "2027-01-04T09:00",
    ]);
    // 37 mL at 0.33 mL/day = 112.12 days = 2690.9 h.
    assert_eq!(v["hours_to_low_alarm"], 2690);
    assert_eq!(v["refill_by"], "2027-02-13T09:00:00");
    assert_eq!(v["limited_by"], "stability");
    let v = json(&[
        "calc",
        "refill",
        "--capacity",
        "20mL",
        "--volume",
        "20mL",
        "--rate",
        "0.1mL/day",
        "--clinic-max",
        "90d",
        "--start",
        "2027-01-04T09:00",
    ]);
    assert_eq!(v["limited_by"], "clinic");
    assert_eq!(v["refill_by"], "2027-04-04T09:00:00");
}

#[test]
fn reconcile_flags_by_pump_size_rx_010_rx_012() {
    let v = json(&[
        "calc",
        "reconcile",
        "--capacity",
        "20mL",
        "--expected",
        "4.5mL",
        "--aspirated",
        "2.9mL",
    ]);
    assert_eq!(v["discrepancy_nl"], -1_600_000);
    assert_eq!(v["flagged"], true);
    assert!(v["message"].as_str().unwrap().contains("pocket fill"));
    let v = json(&[
        "calc",
        "reconcile",
        "--capacity",
        "40mL",
        "--expected",
        "4.5mL",
        "--aspirated",
        "2.9mL",
    ]);
    assert_eq!(v["flagged"], false);
}

#[test]
fn check_exit_status_follows_the_worst_finding_rx_006_rx_012() {
    let clean = thecal(&["calc", "check", "examples/prescription.toml"]);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    // A hard finding exits 3 (2 is kept for a bad file or argument).
    let bad = thecal(&["calc", "check", "examples/morphine-too-high.toml", "--json"]);
    assert_eq!(bad.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&bad.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    let has = |sev: &str, text: &str| {
        findings
            .iter()
            .any(|f| f["severity"] == sev && f["message"].as_str().unwrap().contains(text))
    };
    // 22 mg/day + 3 boluses of 2 mg = 28 mg/day: above the PACC guideline, soft.
    assert!(
        has(
            "soft",
            "morphine 28 mg/day is above the recommended maximum 15 mg/day"
        ),
        "{v}"
    );
    // An opioid patient bolus for an opioid-naive patient is contraindicated: hard.
    assert!(
        has("hard", "opioid-naive patient is contraindicated"),
        "{v}"
    );
    assert!(has("soft", "mixture of 2 drugs"));
    assert!(
        has(
            "hard",
            "bupivacaine 11 mg/day with every allowed patient bolus"
        ) || has("soft", "bupivacaine")
    );
    // A soft-only file exits 4.
    let dir = std::env::temp_dir().join(format!("thecal-soft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let soft = dir.join("soft.toml");
    std::fs::write(
        &soft,
        "[pump]\nmodel = \"synchromed-20\"\n[[drug]]\nname = \"hydromorphone\"\nconcentration = \"2 mg/mL\"\n[basal]\nrate = \"0.05 mL/day\"\n",
    )
    .unwrap();
    let out = thecal(&["calc", "check", soft.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not approved for implanted pumps"));
}

#[test]
fn bad_input_is_one_line_with_exit_2_rx_012() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "calc",
                "dose",
                "--drug",
                "ziconotide",
                "--conc",
                "25 mcg/mL/x",
                "--rate",
                "0.048mL/day",
            ],
            "--conc",
        ),
        (
            &[
                "calc", "dose", "--drug", "aspirin", "--conc", "1mg/mL", "--rate", "1mL/day",
            ],
            "known drugs: morphine",
        ),
        (
            &[
                "calc", "dose", "--drug", "morphine", "--conc", "-1mg/mL", "--rate", "1mL/day",
            ],
            "negative",
        ),
        (
            &[
                "calc", "dose", "--drug", "morphine", "--conc", "1mg/mL", "--rate", "",
            ],
            "empty value",
        ),
        (
            &[
                "calc", "dose", "--drug", "morphine", "--conc", "1mg/mL", "--rate", "1 mL",
            ],
            "that is a volume",
        ),
        (
            &[
                "calc",
                "dose",
                "--drug",
                "morphine",
                "--conc",
                "99999999999999999999 mg/mL",
                "--rate",
                "1mL/day",
            ],
            "too large",
        ),
        (
            &[
                "calc", "rate", "--drug", "morphine", "--conc", "0 mg/mL", "--dose", "1mg/day",
            ],
            "above zero",
        ),
        (
            &[
                "calc",
                "refill",
                "--capacity",
                "20mL",
                "--volume",
                "25mL",
                "--rate",
                "1mL/day",
            ],
            "exceeds the reservoir capacity 20 mL",
        ),
        (
            &[
                "calc",
                "refill",
                "--capacity",
                "20mL",
                "--volume",
                "20mL",
                "--rate",
                "1mL/day",
                "--start",
                "tomorrow",
            ],
            "2027-01-04T09:00",
        ),
        (
            &[
                "calc",
                "refill",
                "--capacity",
                "20mL",
                "--volume",
                "20mL",
                "--rate",
                "0mL/day",
                "--clinic-max",
                "200d",
            ],
            "a clinic may only lower it",
        ),
        (
            &[
                "calc",
                "reconcile",
                "--capacity",
                "20mL",
                "--expected",
                "4.5mL",
                "--aspirated",
                "0.0000001mL",
            ],
            "resolution of a volume is 1 nL",
        ),
        (
            &[
                "calc",
                "reconcile",
                "--capacity",
                "20mL",
                "--expected",
                "4.5mL",
            ],
            "--aspirated",
        ),
        (&["calc", "check", "no/such/file.toml"], "no/such/file.toml"),
        (&["calc", "check", "Cargo.toml"], "Cargo.toml"),
        (&["calc", "frobnicate"], "frobnicate"),
    ];
    for (args, needle) in cases {
        let out = thecal(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let line = stderr_line(&out);
        assert!(
            line.starts_with("error:") && line.contains(needle),
            "{args:?}: {line}"
        );
    }
}

/// A prescription file for a 20 mL SynchroMed-class pump: baclofen at `conc` and `rate`.
fn baclofen_file(name: &str, conc: &str, rate: &str) -> String {
    let path = std::env::temp_dir().join(format!("thecal-gate-{}-{name}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "reservoir_volume = \"20 mL\"\n[pump]\nmodel = \"synchromed-20\"\n[[drug]]\n\
             name = \"baclofen\"\nconcentration = \"{conc}\"\n[basal]\nrate = \"{rate}\"\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// `programmer program` against an address where no pump listens: a refusal must come
/// before any contact (a connection attempt would fail with exit 1 instead).
fn program(file: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "programmer",
        "--key",
        "/nonexistent/clinic.key",
        "--implant",
        "127.0.0.1:9",
        "program",
        "--prescription",
        file,
        "--yes",
    ];
    args.extend_from_slice(extra);
    thecal(&args)
}

#[test]
fn programmer_refuses_a_hard_finding_before_sending_rx_028() {
    // Baclofen 3000 mcg/mL is above the strongest labelled ampoule, 2000 mcg/mL: hard.
    let f = baclofen_file("hard", "3000 mcg/mL", "0.2 mL/day");
    let out = program(&f, &["--confirm-soft", "any reason"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused before sending, hard finding(s): baclofen")
            && err.contains("2 mg/mL"),
        "{err}"
    );
    // --json prints the findings too.
    let out = program(&f, &["--json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["refused"], "hard");
    assert_eq!(v["findings"][0]["severity"], "hard");
}

#[test]
fn programmer_needs_confirm_soft_with_a_reason_for_a_soft_finding_rx_028() {
    // 2000 mcg/mL at 0.6 mL/day = 1200 mcg/day: above the labelled experience of
    // 1000 mcg/day, a soft finding. --yes alone does not confirm it.
    let f = baclofen_file("soft", "2000 mcg/mL", "0.6 mL/day");
    let out = program(&f, &[]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("need --confirm-soft REASON") && err.contains("1.2 mg/day"),
        "{err}"
    );
    let out = program(&f, &["--json"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["refused"], "soft-unconfirmed");
    assert_eq!(v["findings"][0]["severity"], "soft");
    // With a reason the gate passes and the programmer goes on to contact the pump
    // (none listens here: exit 1, a runtime failure, not 3 or 4).
    let out = program(&f, &["--confirm-soft", "severe spasticity, reviewed"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn convert_oral_morphine_and_refuse_an_unknown_ratio_rx_020() {
    // 300 mg/day oral ÷ 300 = 1 mg/day intrathecal; less 25-50 % = 0.5-0.75 mg/day.
    let v = json(&[
        "calc",
        "convert",
        "--from-drug",
        "morphine",
        "--from-route",
        "oral",
        "--dose",
        "300mg/day",
        "--to-drug",
        "morphine",
    ]);
    assert_eq!(v["equivalent_ng_per_day"], 1_000_000);
    assert_eq!(v["start_low_ng_per_day"], 500_000);
    assert_eq!(v["start_high_ng_per_day"], 750_000);
    let out = thecal(&[
        "calc",
        "convert",
        "--from-drug",
        "morphine",
        "--from-route",
        "intrathecal",
        "--dose",
        "1mg/day",
        "--to-drug",
        "sufentanil",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_line(&out).contains("no equianalgesic ratio is known for intrathecal sufentanil")
    );
}

#[test]
fn constant_rate_concentration_interval_fever_and_altitude_rx_021() {
    // 3 mg/day at 1 mL/day needs 3 mg/mL; 30 mL last 30 days. At 38.5 °C the vapour
    // pressure rises 1.5 × 11 kPa = 16.5 kPa; at 2438 m the ambient falls 2438 × 12 Pa =
    // 29.256 kPa: ΔP = 110 + 16.5 + 29.256 = 155.756 kPa, flow × 155.756/110 = 1.41596
    // mL/day (+41.6 %), dose 4.247892 mg/day, 30 mL last 21.19 days (508 h).
    let v = json(&[
        "calc",
        "constant-rate",
        "--drug",
        "morphine",
        "--dose",
        "3mg/day",
        "--nominal-flow",
        "1mL/day",
        "--temperature",
        "38.5",
        "--altitude-m",
        "2438",
    ]);
    assert_eq!(v["concentration_ng_per_ml"], 3_000_000);
    assert_eq!(v["hours_to_empty_nominal"], 720);
    assert_eq!(v["ambient_pa"], 72_069);
    assert_eq!(v["flow_nl_per_day"], 1_415_964);
    assert_eq!(v["daily_dose_ng"], 4_247_892);
    assert_eq!(v["hours_to_empty_there"], 508);
    let out = thecal(&[
        "calc",
        "constant-rate",
        "--drug",
        "morphine",
        "--dose",
        "3mg/day",
        "--nominal-flow",
        "1mL/day",
        "--temperature",
        "99",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("is not a body temperature"));
}

#[test]
fn reconcile_with_the_delivered_volume_rx_019() {
    // 1.9 mL delivered, 0.9 mL short: threshold max(0.5, 5 % × 1.9) = 0.5 mL → flagged.
    let v = json(&[
        "calc",
        "reconcile",
        "--capacity",
        "20mL",
        "--expected",
        "18.1mL",
        "--aspirated",
        "17.2mL",
        "--delivered",
        "1.9mL",
    ]);
    assert_eq!(v["threshold_nl"], 500_000);
    assert_eq!(v["flagged"], true);
}

#[test]
fn refill_of_an_admixture_uses_its_beyond_use_date_rx_022() {
    // Morphine + bupivacaine: 90 days each; the pharmacy's 60 days from 2027-01-04T09:00
    // is earlier than the volume (18 mL / 0.1145 mL/day = 157 days): 2027-03-05T09:00.
    let v = json(&[
        "calc",
        "refill",
        "--volume",
        "20mL",
        "--rate",
        "0.1mL/day",
        "--drug",
        "morphine",
        "--drug",
        "bupivacaine",
        "--pharmacy-bud",
        "60d",
        "--start",
        "2027-01-04T09:00",
    ]);
    assert_eq!(v["limited_by"], "stability");
    assert_eq!(v["refill_by"], "2027-03-05T09:00:00");
    // Without the pharmacy date the drugs' 90 days limit: 2027-04-04T09:00.
    let v = json(&[
        "calc",
        "refill",
        "--volume",
        "20mL",
        "--rate",
        "0.1mL/day",
        "--drug",
        "morphine",
        "--drug",
        "bupivacaine",
        "--start",
        "2027-01-04T09:00",
    ]);
    assert_eq!(v["refill_by"], "2027-04-04T09:00:00");
}

#[test]
fn one_vocabulary_model_durations_and_json_rx_027() {
    // sim list and sim accuracy print JSON with --json; the hardware model is --model.
    let out = thecal(&["sim", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "wrong-concentration"),
        "{v}"
    );
    let dir = std::env::temp_dir().join(format!("thecal-acc-{}", std::process::id()));
    let out = thecal(&[
        "sim",
        "accuracy",
        "--model",
        "synchromed-20",
        "--rate",
        "24mL/day",
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["windows"].as_array().unwrap().len(), 5, "{v}");
    // The old names are gone; a duration needs its unit.
    let out = thecal(&["sim", "accuracy", "--device", "synchromed-20"]);
    assert_eq!(out.status.code(), Some(2));
    let out = thecal(&["sim", "population", "--duration", "1", "--patients", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("--duration"));
    let out = thecal(&[
        "calc",
        "refill",
        "--ptm-dose",
        "5uL",
        "--volume",
        "20mL",
        "--rate",
        "1mL/day",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
