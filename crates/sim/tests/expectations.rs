//! The newer expectations judged on hand-made runs whose answers are worked out by hand
//! (SIM-067, SIM-069), the clock events' field errors (SIM-068), and the shipped
//! scenarios of therapy loss, clock changes and daylight saving run end to end.

use thecal_sim::result::{AlarmMark, RunResult, Sample, Totals};
use thecal_sim::{engine, scenario};

const HEAD: &str = r#"
name = "t"
description = "t"
duration = "2 d"
fill = "20 mL"
[device]
model = "synchromed-20"
[prescription]
drug = [{ name = "morphine", concentration = "10 mg/mL" }]
basal = { rate = "0.3 mL/day" }
patient_bolus = { volume = "20 uL", duration = "10 min", lockout = "1 h", max_per_day = 6 }
"#;

fn sample(t_h: f64, intended: f64, running: f64, tip: f64) -> Sample {
    Sample {
        t_h,
        reservoir_ml: 10.0,
        reservoir_expected_ml: 10.0,
        prescribed_mcg_per_day: running,
        intended_mcg_per_day: intended,
        tip_mcg_per_day: tip,
        flow_ml_per_day: 0.3,
        csf_ng_per_ml: 0.0,
        systemic_ng_per_ml: 0.0,
        effect: 0.0,
        withdrawal_risk: 0.0,
        overdose_risk: 0.0,
        battery_pct: 50.0,
        opioid_withdrawal_risk: 0.0,
        clonidine_withdrawal_risk: 0.0,
        opioid_tolerance: f64::NAN,
    }
}

fn alarm(t_h: f64, kind: &str, priority: &str) -> AlarmMark {
    AlarmMark {
        t_h,
        kind: kind.into(),
        priority: priority.into(),
        what: "raised".into(),
    }
}

/// A 10-day run sampled every 12 h at 100 mcg/day intended: delivered until day 4,
/// nothing while the pump is at end of service from day 4 to day 7 (the pump's own
/// prescribed dose is zero then), then 104, 97 and 100 mcg/day.
fn run() -> RunResult {
    let mut samples = Vec::new();
    for i in 1..=20 {
        let t = 12.0 * i as f64;
        let (running, tip) = match t {
            t if t <= 96.0 => (100.0, 100.0),
            t if t <= 168.0 => (0.0, 0.0),
            t if t <= 192.0 => (100.0, 104.0),
            t if t <= 216.0 => (100.0, 97.0),
            _ => (100.0, 100.0),
        };
        samples.push(sample(t, 100.0, running, tip));
    }
    RunResult {
        scenario: "hand".into(),
        description: String::new(),
        duration_h: 240.0,
        samples,
        alarms: vec![
            alarm(10.0, "ElectiveReplacement", "Medium"),
            alarm(20.0, "LowReservoir", "Medium"),
            alarm(96.0, "EndOfService", "High"),
            alarm(200.0, "LowReservoir", "Low"),
        ],
        notes: vec![],
        totals: Totals {
            drug: "morphine".into(),
            // The pump ran 7 of 10 days; 3 days (300 mcg) of therapy were lost.
            prescribed_mcg: 700.0,
            intended_mcg: 1000.0,
            delivered_tip_mcg: 702.0,
            // Boluses at 0, 1, 2, 3, 4, 5 h, then 23.5, 24.5, 30 h: the 24 h window from
            // 0 h holds 0..5 h and 23.5 h (7), from 1 h: 1..5, 23.5, 24.5 (7), from
            // 2 h: 2..5, 23.5, 24.5 (6).
            patient_bolus_h: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 23.5, 24.5, 30.0],
            boluses_given: 9,
            ..Totals::default()
        },
        verdicts: vec![],
        radio: None,
    }
}

/// The verdicts of the expectations written in `expect` (TOML `[[expect]]` tables).
fn judge(expect: &str) -> Vec<(bool, String)> {
    let sc = scenario::parse(&format!("{HEAD}\n{expect}")).unwrap();
    scenario::judge(&sc, &run())
        .into_iter()
        .map(|v| (v.passed, v.detail))
        .collect()
}

fn one(expect: &str) -> (bool, String) {
    judge(expect).remove(0)
}

#[test]
fn dose_expectations_judge_against_the_intended_dose_sim_067() {
    // 702 of 1000 intended: -29.80 %; against the pump's own 700 it would be +0.29 %.
    let (ok, d) = one("[[expect]]\nkind = \"delivered-within\"\npercent = 5.0");
    assert!(!ok, "{d}");
    assert!(d.contains("702.0 mcg of 1000.0 intended (-29.80 %)"), "{d}");
    // Below 50 % from the sample at 108 h to the one at 168 h: 72 h counted from the
    // last sample before (96 h) to the last sample below (168 h).
    let (ok, d) =
        one("[[expect]]\nkind = \"tip-dose-below\"\nfraction = 0.5\nlonger_than = \"71 h\"");
    assert!(ok, "{d}");
    assert!(d.contains("72.0 h (from day 4.0)"), "{d}");
    let (ok, d) = one("[[expect]]\nkind = \"interruption-at-most\"\nlonger_than = \"3 d\"");
    assert!(ok, "{d}");
    assert!(d.contains("72.0 h (3.0 days) from day 4.0"), "{d}");
    let (ok, _) = one("[[expect]]\nkind = \"interruption-at-most\"\nlonger_than = \"71 h\"");
    assert!(!ok);
}

#[test]
fn not_negates_any_expectation_and_keeps_its_detail_sim_069() {
    let v = judge(
        "[[expect]]\nkind = \"interruption-at-most\"\nlonger_than = \"71 h\"\nnot = true\n\
         [[expect]]\nkind = \"no-alarm\"\nalarm = \"EndOfService\"\nnot = true\n\
         [[expect]]\nkind = \"no-alarm\"\nalarm = \"MotorStall\"\nnot = true\n\
         [[expect]]\nkind = \"no-alarm\"\nalarm = \"MotorStall\"\nnot = false",
    );
    assert_eq!(
        v.iter().map(|x| x.0).collect::<Vec<_>>(),
        [true, true, false, true]
    );
    assert!(
        v[1].1.contains("EndOfService raised at day 4.0"),
        "{}",
        v[1].1
    );
}

#[test]
fn alarm_priority_and_gap_worked_by_hand_sim_069() {
    let v = judge(
        "[[expect]]\nkind = \"alarm-priority\"\nalarm = \"EndOfService\"\npriority = \"high\"\n\
         [[expect]]\nkind = \"alarm-priority\"\nalarm = \"EndOfService\"\npriority = \"medium\"\n\
         [[expect]]\nkind = \"alarm-priority\"\nalarm = \"LowReservoir\"\npriority = \"medium\"\n\
         [[expect]]\nkind = \"alarm-priority\"\nalarm = \"MotorStall\"\npriority = \"high\"",
    );
    assert_eq!(
        v.iter().map(|x| x.0).collect::<Vec<_>>(),
        [true, false, false, false]
    );
    // LowReservoir was raised once medium and once low: not every raise was medium.
    assert!(
        v[2].1.contains("2 time(s) with priority low, medium"),
        "{}",
        v[2].1
    );
    assert!(v[3].1.contains("never raised"));
    // ERI at 10 h, EOS at 96 h: 86 h = 3.58 days apart.
    let v = judge(
        "[[expect]]\nkind = \"alarm-gap\"\nalarm = \"ElectiveReplacement\"\nthen = \"EndOfService\"\nlonger_than = \"86 h\"\n\
         [[expect]]\nkind = \"alarm-gap\"\nalarm = \"ElectiveReplacement\"\nthen = \"EndOfService\"\nlonger_than = \"87 h\"\n\
         [[expect]]\nkind = \"alarm-gap\"\nalarm = \"ElectiveReplacement\"\nthen = \"EndOfService\"\nshorter_than = \"86 h\"\n\
         [[expect]]\nkind = \"alarm-gap\"\nalarm = \"EndOfService\"\nthen = \"ElectiveReplacement\"\nlonger_than = \"1 h\"\n\
         [[expect]]\nkind = \"alarm-gap\"\nalarm = \"ElectiveReplacement\"\nthen = \"LowReservoir\"\nshorter_than = \"10 h\"",
    );
    assert_eq!(
        v.iter().map(|x| x.0).collect::<Vec<_>>(),
        [true, false, true, false, true]
    );
    assert!(
        v[0].1
            .contains("day 0.42, EndOfService at day 4.00: 3.58 days apart"),
        "{}",
        v[0].1
    );
    assert!(v[3].1.contains("not raised after it"), "{}", v[3].1);
}

#[test]
fn most_boluses_in_any_rolling_24_h_worked_by_hand_sim_069() {
    // From 0 h to before 24 h: 0, 1, 2, 3, 4, 5, 23.5 = 7 (the first such window).
    let (ok, d) = one("[[expect]]\nkind = \"boluses-in-24h-at-most\"\ncount = 7");
    assert!(ok, "{d}");
    assert!(
        d.contains("at most 7 patient boluses in any 24 h (from day 0.00); 9 in all"),
        "{d}"
    );
    let (ok, _) = one("[[expect]]\nkind = \"boluses-in-24h-at-most\"\ncount = 6");
    assert!(!ok);
    // A bolus exactly 24 h after another is in the next window.
    assert_eq!(
        thecal_sim::expect::most_in_window(&[0.0, 24.0, 48.0], 24.0).0,
        1
    );
    assert_eq!(thecal_sim::expect::most_in_window(&[], 24.0).0, 0);
}

#[test]
fn tip_dose_band_after_a_time_worked_by_hand_sim_069() {
    // After 170 h: 104 (+4 %), 97 (-3 %), 100: the worst is +4.00 % at 180 h (day 7.5).
    let (ok, d) = one("[[expect]]\nkind = \"tip-dose-within\"\npercent = 4.0\nafter = \"170 h\"");
    assert!(ok, "{d}");
    assert!(d.contains("+4.00 % at day 7.50 (6 samples)"), "{d}");
    let (ok, _) = one("[[expect]]\nkind = \"tip-dose-within\"\npercent = 3.9\nafter = \"170 h\"");
    assert!(!ok);
    // Over the whole run the end of service is -100 %.
    let (ok, d) = one("[[expect]]\nkind = \"tip-dose-within\"\npercent = 50.0");
    assert!(!ok);
    assert!(d.contains("-100.00 %"), "{d}");
}

#[test]
fn new_fields_are_checked_with_one_line_naming_the_field_sim_068_sim_069() {
    let cases = [
        (
            "[[event]]\nat = \"1 h\"\nkind = \"time-zone\"",
            "event[0].offset",
            "is required",
        ),
        (
            "[[event]]\nat = \"1 h\"\nkind = \"time-zone\"\noffset = \"+15:00\"",
            "event[0].offset",
            "-12:00 to +14:00",
        ),
        (
            "[[event]]\nat = \"1 h\"\nkind = \"set-clock\"\nshift = \"-1 fortnight\"",
            "event[0].shift",
            "",
        ),
        (
            "[[event]]\nat = \"1 h\"\nkind = \"set-clock\"\nshift = \"+5000 d\"",
            "event[0].shift",
            "at most",
        ),
        (
            "[[expect]]\nkind = \"alarm-priority\"\nalarm = \"EndOfService\"\npriority = \"urgent\"",
            "expect[0].priority",
            "known: high, medium, low",
        ),
        (
            "[[expect]]\nkind = \"alarm-priority\"\nalarm = \"EndOfService\"",
            "expect[0].priority",
            "is required",
        ),
        (
            "[[expect]]\nkind = \"alarm-gap\"\nalarm = \"ElectiveReplacement\"\nthen = \"EndOfService\"",
            "expect[0].longer_than",
            "shorter_than",
        ),
        (
            "[[expect]]\nkind = \"alarm-gap\"\nalarm = \"ElectiveReplacement\"\nthen = \"EOS\"\nlonger_than = \"1 d\"",
            "expect[0].then",
            "unknown alarm 'EOS'",
        ),
        (
            "[[expect]]\nkind = \"tip-dose-within\"\npercent = -1.0",
            "expect[0].percent",
            "0 or above",
        ),
        (
            "[[expect]]\nkind = \"interruption-at-most\"",
            "expect[0].longer_than",
            "is required",
        ),
        (
            "[[expect]]\nkind = \"interruption-at-most\"\nlonger_than = \"1 d\"\nfraction = 2.0",
            "expect[0].fraction",
            "from 0 to 1",
        ),
        (
            "[[expect]]\nkind = \"boluses-in-24h-at-most\"",
            "expect[0].count",
            "is required",
        ),
    ];
    for (tail, field, says) in cases {
        let e = scenario::parse(&format!("{HEAD}\n{tail}")).unwrap_err();
        assert_eq!(e.field, field, "{tail}: {e}");
        assert!(e.message.contains(says), "{tail}: {e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

fn shipped(name: &str) -> RunResult {
    let path = format!("{}/../../scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let sc = scenario::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    engine::run(&sc)
}

#[test]
fn therapy_lost_after_end_of_service_is_seen_sim_067() {
    let r = shipped("therapy-loss-eos");
    assert!(r.passed(), "{:?}", r.verdicts);
    let eos = r.totals.eos_day.unwrap();
    // After end of service the pump runs nothing; the clinician still intends 200 mcg/day.
    let after: Vec<&Sample> = r
        .samples
        .iter()
        .filter(|s| s.t_h > eos * 24.0 + 6.0)
        .collect();
    assert!(!after.is_empty());
    for s in &after {
        assert_eq!(s.prescribed_mcg_per_day, 0.0);
        assert!(
            (s.intended_mcg_per_day - 200.0).abs() < 1e-6,
            "{}",
            s.intended_mcg_per_day
        );
        assert_eq!(s.tip_mcg_per_day, 0.0);
    }
    // The intended total is the whole 200 days at 200 mcg/day.
    assert!((r.totals.intended_mcg - 40_000.0).abs() < 1e-3);
    // Against the pump's own (stopped) prescription the loss would look like nothing.
    let against_running = (r.totals.delivered_tip_mcg / r.totals.prescribed_mcg - 1.0).abs();
    assert!(against_running < 0.01, "{against_running}");
}

#[test]
fn a_clock_change_resets_neither_bolus_count_nor_window_sim_068() {
    let r = shipped("clock-back-after-six-boluses");
    assert!(r.passed(), "{:?}", r.verdicts);
    // Six between 08:00 and 18:00, none after either clock change until a day after
    // the first (08:00 + 24 h), then the seventh at 32.5 h.
    let b = &r.totals.patient_bolus_h;
    assert_eq!(b.len(), 7, "{b:?}");
    assert!((b[6] - 32.5).abs() < 1e-9, "{b:?}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.text == "pump clock set back 1 d (UTC+00:00)")
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.text == "pump clock set forward 2 d (UTC+00:00)")
    );
}

#[test]
fn a_flex_schedule_follows_local_time_through_daylight_saving_sim_068() {
    // The morning step (06:00-10:00 local at 1.6 mL/day, 800 mcg/day) begins at 05:00
    // UTC after the change (day 3, 73 h): the sample ending at 3 d 06:00 UTC (78 h) is
    // in the step, the one ending at 3 d 05:00 UTC (77 h) is not.
    let r = shipped("flex-daylight-saving");
    assert!(r.passed(), "{:?}", r.verdicts);
    let at = |h: f64| r.samples.iter().find(|s| (s.t_h - h).abs() < 1e-9).unwrap();
    assert!((at(78.0).intended_mcg_per_day - 800.0).abs() < 1e-6);
    assert!((at(77.0).intended_mcg_per_day - 400.0).abs() < 1e-6);
    assert!((at(78.0).tip_mcg_per_day - 800.0).abs() < 40.0);
    // Before the change, the step began at 06:00 UTC.
    assert!((at(6.0).intended_mcg_per_day - 400.0).abs() < 1e-6);
    assert!((at(7.0).intended_mcg_per_day - 800.0).abs() < 1e-6);
    let r = shipped("travel-without-clock-change");
    assert!(r.passed(), "{:?}", r.verdicts);
}
