//! A population run split across machines (SIM-073, SIM-074).
//!
//! Shard `k` of `n` ([`Shard`], 1 ≤ k ≤ n) runs the patients of one contiguous block
//! of indices ([`Shard::range`]); each patient's seed comes from the population seed
//! and its index alone ([`super::patient_seed`]), so a patient comes to the same outcome
//! whichever shard, machine or thread runs it. A shard writes its outcomes to a
//! [`ShardFile`] (JSON, every floating-point value as its exact bit pattern, so nothing
//! is rounded on the way), and [`merge`] joins the files of all `n` shards back into
//! the outcomes of the whole population, refusing a set with a shard missing, given
//! twice, from another run, or holding patients that are not its own. The report
//! written from the merged outcomes is the single run's, byte for byte.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::PatientOutcome;

/// At most this many shards (more files than any batch engine's array runs at once).
pub const MAX_SHARDS: u32 = 100_000;

/// What a shard file says it is.
pub const FORMAT: &str = "thecal population shard 1";

/// Shard `k` of `n`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    k: u32,
    n: u32,
}

/// What `--shard` accepts, said once for every refusal.
const ALLOWED: &str = "expected K/N with whole numbers 1 ≤ K ≤ N ≤ 100000 (shard K of N, e.g. 3/8)";

impl Shard {
    /// The whole population as one shard.
    pub const WHOLE: Shard = Shard { k: 1, n: 1 };

    /// Shard `k` of `n`; `None` unless 1 ≤ k ≤ n ≤ [`MAX_SHARDS`].
    pub fn new(k: u32, n: u32) -> Option<Shard> {
        (1 <= k && k <= n && n <= MAX_SHARDS).then_some(Shard { k, n })
    }

    /// Which shard, 1 to [`Shard::n`].
    pub fn k(self) -> u32 {
        self.k
    }

    /// How many shards.
    pub fn n(self) -> u32 {
        self.n
    }

    /// The patient indices of this shard in a population of `patients`: the block
    /// from ⌊(k − 1) · patients / n⌋ up to ⌊k · patients / n⌋. The blocks of shards
    /// 1 to n follow one another and cover `0..patients` exactly; their sizes differ by
    /// at most one (a shard is empty when there are more shards than patients).
    pub fn range(self, patients: usize) -> Range<usize> {
        let at = |k: u32| {
            let p = patients as u128;
            usize::try_from(p * u128::from(k) / u128::from(self.n)).unwrap_or(patients)
        };
        at(self.k - 1)..at(self.k)
    }

    /// The file name a shard writes in its folder: `shard-00003-of-00008.json`, so that
    /// the files of one run sort in shard order.
    pub fn file_name(self) -> String {
        format!("shard-{:05}-of-{:05}.json", self.k, self.n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `K/N`; the refusal is one line saying what is allowed.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("'{s}': {ALLOWED}");
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let whole = |x: &str| {
            let x = x.trim();
            // `u32::from_str` takes a leading '+'; a shard number is digits only.
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            x.parse::<u32>().ok()
        };
        let (k, n) = (whole(k).ok_or_else(bad)?, whole(n).ok_or_else(bad)?);
        Shard::new(k, n).ok_or_else(bad)
    }
}

/// One patient's outcome with every floating-point value as its IEEE 754 bit pattern
/// ([`f64::to_bits`]): JSON numbers written and read back may come back one unit in
/// the last place off, bit patterns never do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ExactOutcome {
    index: usize,
    dose_error_pct_bits: u64,
    alarms_before_refill: u32,
    eri_day_bits: Option<u64>,
    eos_day_bits: Option<u64>,
    vetoes: u64,
    passed: bool,
}

impl From<&PatientOutcome> for ExactOutcome {
    fn from(o: &PatientOutcome) -> Self {
        ExactOutcome {
            index: o.index,
            dose_error_pct_bits: o.dose_error_pct.to_bits(),
            alarms_before_refill: o.alarms_before_refill,
            eri_day_bits: o.eri_day.map(f64::to_bits),
            eos_day_bits: o.eos_day.map(f64::to_bits),
            vetoes: o.vetoes,
            passed: o.passed,
        }
    }
}

impl From<&ExactOutcome> for PatientOutcome {
    fn from(o: &ExactOutcome) -> Self {
        PatientOutcome {
            index: o.index,
            dose_error_pct: f64::from_bits(o.dose_error_pct_bits),
            alarms_before_refill: o.alarms_before_refill,
            eri_day: o.eri_day_bits.map(f64::from_bits),
            eos_day: o.eos_day_bits.map(f64::from_bits),
            vetoes: o.vetoes,
            passed: o.passed,
        }
    }
}

/// The run a shard belongs to: every shard of one population run has the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Patients in the whole population.
    pub patients: usize,
    /// Simulated time per patient, ms.
    pub duration_ms: u64,
    /// The population seed.
    pub seed: u64,
}

impl fmt::Display for RunSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} patients, {}, seed {}",
            self.patients,
            thecal_rx::Duration::from_ms(self.duration_ms),
            self.seed
        )
    }
}

/// What one shard wrote: its place in the run and its patients' outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    format: String,
    run: RunSpec,
    shard: u32,
    shards: u32,
    outcomes: Vec<ExactOutcome>,
}

impl ShardFile {
    /// The file of `shard` of `run` with the outcomes its patients came to.
    pub fn new(run: RunSpec, shard: Shard, outcomes: &[PatientOutcome]) -> Self {
        ShardFile {
            format: FORMAT.to_string(),
            run,
            shard: shard.k,
            shards: shard.n,
            outcomes: outcomes.iter().map(ExactOutcome::from).collect(),
        }
    }

    /// The file as JSON text, ending in a newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    /// Reads a shard file's text; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ShardFile, String> {
        let f: ShardFile =
            serde_json::from_str(text).map_err(|e| format!("not a population shard file ({e})"))?;
        if f.format != FORMAT {
            return Err(format!(
                "not a population shard file of this version (format '{}', expected '{FORMAT}')",
                f.format
            ));
        }
        Ok(f)
    }

    /// The run it belongs to.
    pub fn run(&self) -> RunSpec {
        self.run
    }

    /// Which shard it is; `None` for numbers no shard has.
    pub fn shard(&self) -> Option<Shard> {
        Shard::new(self.shard, self.shards)
    }
}

/// Joins the shard files of one run, each with the name it is known by (its path), into
/// the outcomes of the whole population in index order. Refused, with one line naming
/// the file: no files; a file from another run or split another way; a shard given
/// twice; a shard missing; a file holding other patients than its shard's.
pub fn merge(files: &[(String, ShardFile)]) -> Result<(RunSpec, Vec<PatientOutcome>), String> {
    let Some((first_name, first)) = files.first() else {
        return Err("no shard files to merge".into());
    };
    let run = first.run;
    let n = first.shards;
    let mut by_shard: BTreeMap<u32, (&str, &ShardFile)> = BTreeMap::new();
    for (name, f) in files {
        let Some(shard) = f.shard() else {
            return Err(format!(
                "{name}: shard {}/{} is not a shard (1 ≤ K ≤ N ≤ {MAX_SHARDS})",
                f.shard, f.shards
            ));
        };
        if f.run != run {
            return Err(format!(
                "{name} is from another run ({}) than {first_name} ({run})",
                f.run
            ));
        }
        if shard.n != n {
            return Err(format!(
                "{name} is shard {shard} but {first_name} is of {n} shards: the files come from \
                 differently split runs"
            ));
        }
        if let Some((other, _)) = by_shard.insert(shard.k, (name, f)) {
            return Err(format!("shard {shard} is given twice: {other} and {name}"));
        }
    }
    let missing: Vec<u32> = (1..=n).filter(|k| !by_shard.contains_key(k)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .take(10)
            .map(|k| format!("{k}/{n}"))
            .collect();
        let more = if missing.len() > 10 {
            format!(" and {} more", missing.len() - 10)
        } else {
            String::new()
        };
        return Err(format!(
            "shard{} {}{more} missing: {} of {n} shard files given, all {n} are needed",
            if missing.len() == 1 { "" } else { "s" },
            list.join(", "),
            by_shard.len()
        ));
    }
    let mut outcomes = Vec::with_capacity(run.patients);
    for (k, (name, f)) in by_shard {
        let range = Shard { k, n }.range(run.patients);
        let indices_match = f.outcomes.len() == range.len()
            && f.outcomes
                .iter()
                .zip(range.clone())
                .all(|(o, i)| o.index == i);
        if !indices_match {
            return Err(format!(
                "{name}: shard {k}/{n} must hold patients {} to {} in order, one each; it holds {} \
                 outcome(s)",
                range.start,
                range.end.saturating_sub(1),
                f.outcomes.len()
            ));
        }
        outcomes.extend(f.outcomes.iter().map(PatientOutcome::from));
    }
    Ok((run, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_text_is_k_of_n_with_one_line_refusals_sim_073() {
        assert_eq!("3/8".parse::<Shard>(), Ok(Shard { k: 3, n: 8 }));
        assert_eq!(" 1/1 ".parse::<Shard>(), Ok(Shard::WHOLE));
        assert_eq!(
            "100000/100000".parse::<Shard>().map(|s| s.to_string()),
            Ok("100000/100000".to_string())
        );
        for bad in [
            "0/0",
            "3/2",
            "x",
            "",
            "/",
            "1/",
            "/2",
            "0/4",
            "-1/4",
            "+1/4",
            "1/+4",
            "1.5/4",
            "1/4/5",
            "1/100001",
            "4294967296/4294967297",
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(
                e.contains("1 ≤ K ≤ N ≤ 100000") && e.contains(&format!("'{bad}'")),
                "{bad}: {e}"
            );
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn shards_cover_the_population_once_in_order_sim_073() {
        for patients in [0usize, 1, 2, 7, 10, 100, 1001] {
            for n in [1u32, 2, 3, 7, 10, 64] {
                let mut next = 0;
                let mut sizes = Vec::new();
                for k in 1..=n {
                    let r = Shard::new(k, n).unwrap().range(patients);
                    assert_eq!(r.start, next, "{patients} patients, shard {k}/{n}");
                    next = r.end;
                    sizes.push(r.len());
                }
                assert_eq!(next, patients);
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{patients}/{n}: {sizes:?}");
            }
        }
        // By hand: 10 patients in 4 shards, 2, 3, 2, 3.
        let ranges: Vec<_> = (1..=4)
            .map(|k| Shard::new(k, 4).unwrap().range(10))
            .collect();
        assert_eq!(ranges, [0..2, 2..5, 5..7, 7..10]);
        assert_eq!(
            Shard::new(3, 8).unwrap().file_name(),
            "shard-00003-of-00008.json"
        );
    }

    fn outcome(index: usize, x: f64) -> PatientOutcome {
        PatientOutcome {
            index,
            dose_error_pct: x,
            alarms_before_refill: 1,
            eri_day: (index % 2 == 0).then_some(x * 3.0),
            eos_day: None,
            vetoes: index as u64,
            passed: index % 3 != 0,
        }
    }

    const RUN: RunSpec = RunSpec {
        patients: 5,
        duration_ms: 86_400_000,
        seed: 7,
    };

    fn files(n: u32) -> Vec<(String, ShardFile)> {
        // Values whose shortest decimal form is long: they must come back bit for bit.
        let all: Vec<PatientOutcome> = (0..RUN.patients)
            .map(|i| outcome(i, 0.1 + f64::from(i as u32) / 3.0 - 1e-17))
            .collect();
        (1..=n)
            .map(|k| {
                let s = Shard::new(k, n).unwrap();
                let f = ShardFile::new(RUN, s, &all[s.range(RUN.patients)]);
                // Through the text, as a file on shared storage.
                let f = ShardFile::parse(&f.to_json()).unwrap();
                (s.file_name(), f)
            })
            .collect()
    }

    #[test]
    fn merge_gives_back_every_outcome_bit_for_bit_sim_074() {
        let whole: Vec<PatientOutcome> = (0..RUN.patients)
            .map(|i| outcome(i, 0.1 + f64::from(i as u32) / 3.0 - 1e-17))
            .collect();
        for n in [1, 2, 3, 5, 8] {
            let mut f = files(n);
            // Any order of files.
            f.reverse();
            let (run, merged) = merge(&f).unwrap();
            assert_eq!(run, RUN);
            assert_eq!(merged, whole, "{n} shards");
        }
        // NaN and infinities survive too.
        let odd = [
            outcome(0, f64::NAN),
            outcome(1, f64::INFINITY),
            outcome(2, -0.0),
        ];
        let run = RunSpec { patients: 3, ..RUN };
        let f = ShardFile::parse(&ShardFile::new(run, Shard::WHOLE, &odd).to_json()).unwrap();
        let (_, back) = merge(&[("x".into(), f)]).unwrap();
        assert!(back[0].dose_error_pct.is_nan());
        assert_eq!(back[1].dose_error_pct, f64::INFINITY);
        assert_eq!(back[2].dose_error_pct.to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn merge_refuses_missing_duplicate_foreign_and_tampered_shards_sim_074() {
        let err = |f: &[(String, ShardFile)]| merge(f).unwrap_err();
        assert_eq!(err(&[]), "no shard files to merge");

        let mut f = files(4);
        f.remove(2);
        let e = err(&f);
        assert_eq!(
            e,
            "shard 3/4 missing: 3 of 4 shard files given, all 4 are needed"
        );

        let mut f = files(4);
        f.push(f[1].clone());
        let e = err(&f);
        assert_eq!(
            e,
            "shard 2/4 is given twice: shard-00002-of-00004.json and shard-00002-of-00004.json"
        );

        let mut f = files(4);
        f[3].1.run.seed = 8;
        let e = err(&f);
        assert!(
            e.starts_with(
                "shard-00004-of-00004.json is from another run (5 patients, 1 d, seed 8)"
            ),
            "{e}"
        );

        let mut f = files(2);
        f.extend(files(3).into_iter().skip(2));
        let e = err(&f);
        assert!(e.contains("differently split"), "{e}");

        let mut f = files(2);
        f[0].1.outcomes.pop();
        let e = err(&f);
        assert!(e.contains("must hold patients 0 to 1"), "{e}");

        let mut f = files(2);
        f[1].1.outcomes.swap(0, 1);
        assert!(err(&f).contains("must hold patients 2 to 4"));

        let mut f = files(1);
        f[0].1.shard = 2;
        assert!(err(&f).contains("is not a shard"));

        assert!(
            ShardFile::parse("{}")
                .unwrap_err()
                .starts_with("not a population shard file")
        );
        let other = files(1)[0].1.to_json().replace(FORMAT, "something else");
        assert!(
            ShardFile::parse(&other)
                .unwrap_err()
                .contains("expected 'thecal population shard 1'")
        );
    }
}
