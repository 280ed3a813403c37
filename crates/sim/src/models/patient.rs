//! The patient (SIM-013): intrathecal pharmacokinetics, effect, baclofen withdrawal
//! risk, overdose risk and patient bolus presses.
//!
//! # Pharmacokinetics
//! One drug per [`Patient`] (the engine keeps one per drug of an admixture). Two
//! compartments, amounts in ng:
//!
//! ```text
//! dA_csf/dt = R_csf − k_csf·A_csf                 k_csf = ln 2 / t½,csf
//! dA_sys/dt = R_sys + k_csf·A_csf − k_sys·A_sys   k_sys = ln 2 / t½,sys
//! C_csf = A_csf / V_csf     V_csf = CL_csf · t½,csf / ln 2
//! C_sys = A_sys / V_sys
//! ```
//!
//! Doses are impulses ([`Patient::dose_csf`], [`Patient::dose_systemic`]); `R_csf` and
//! `R_sys` are optional constant infusions (for a gas pump between events).
//! [`Patient::advance`] solves the linear system **exactly** with exponentials, as do
//! the three running averages of `C_csf` below (first-order filters of the same
//! signal), so the engine can jump hours or days between events and the result does
//! not depend on how it splits the time. At steady state under a daily dose `D`:
//! `C_csf = D / 24 / CL_csf` and `C_sys = D / 24 / CL_sys` (everything leaves the CSF
//! into the blood).
//!
//! # Effect
//! `E = C/(C + EC50) × rhythm(hour)`, with `EC50 = C_ss(reference dose) / 3 /
//! sensitivity`: the drug's usual maintenance dose ([`PkParams::reference_daily_ng`])
//! gives 0.75 at steady state, before the daily rhythm (−15 % at the worst hour).
//!
//! # Withdrawal (baclofen)
//! Three exponential averages of `C_csf`: *fast* (6 h), *slow* (24 h) and *baseline*
//! (72 h, "the patient's recent steady level"). With `r = fast / baseline`, risk rises
//! linearly from 0 at `r = 0.75` to 1 at `r = 0.25` (0.9 and 0.4 when
//! [`Condition::high_risk`]: spinal injury at T6 or above, DOMAIN.md §4), so it is
//! flagged (≥ 0.5) once the 6-hour average has stayed below half the 3-day level
//! (below 65 % for high risk). After an abrupt stop it is flagged in about 8 h
//! (6 h high risk). [`Patient::withdrawal_severity`] is the same function of the slow
//! average: it reaches 0.5 about 28 h after a stop and 1 by about 50 h, the 24–72 h
//! progression of DOMAIN.md §4. A patient whose baseline is below 5 % of the
//! reference steady level is not established on the drug: risk 0.
//!
//! # Overdose (respiratory depression)
//! `u = max(C_csf / C_csf,ref, C_sys / C_sys,ref)`, the references being the steady
//! levels at the drug's hard-limit daily dose from the rx library (the upper usual
//! starting dose for an opioid-naive patient); risk = clamp((u − 1) / 4): 0 at the hard
//! limit's steady level, flagged (0.5) at 3× it, 1 at 5× (assumption).

use rand::Rng;
use rand_distr::Exp1;
use thecal_rx::drug::DrugId;

/// Time constant of the fast average of the CSF level, hours (assumption).
pub const FAST_TAU_H: f64 = 6.0;
/// Time constant of the slow average of the CSF level, hours (assumption).
pub const SLOW_TAU_H: f64 = 24.0;
/// Time constant of the baseline ("recent steady level"), hours: 3 days (assumption).
pub const BASELINE_TAU_H: f64 = 72.0;
/// Below this fraction of the reference steady CSF level the baseline counts as "not
/// established on the drug" and withdrawal risk is 0 (assumption).
pub const ESTABLISHED_FRACTION: f64 = 0.05;
/// Amplitude of the daily rhythm: the effect is this much lower at the worst hour
/// (assumption).
pub const RHYTHM_AMPLITUDE: f64 = 0.15;
/// Overdose risk reaches 0.5 (flagged) at this multiple of the reference steady level
/// (assumption).
pub const OVERDOSE_FLAG_MULTIPLE: f64 = 3.0;
/// Risk at which [`Patient::withdrawal_flagged`] and [`Patient::overdose_flagged`] are
/// true.
pub const FLAG_AT: f64 = 0.5;
/// Time constant of the opioid tolerance average of the CSF level, hours: 7 days
/// (assumption: tolerance builds and is lost over days to weeks).
pub const TOLERANCE_TAU_H: f64 = 168.0;
/// Gain β of opioid tolerance: the tolerance factor is `T = 1 + β·u_tol`, where
/// `u_tol` is the potency-weighted steady exposure the patient is established on
/// (assumption, check: tolerance to respiratory depression is held to develop at least
/// as fully as tolerance to analgesia; β = 2 puts the flag at about 2.5 times a usual
/// established exposure).
pub const TOLERANCE_GAIN: f64 = 2.0;
/// Opioid withdrawal risk is 0 while the 6-hour CSF average is at least this fraction
/// of the 3-day baseline (assumption, placed so that an abrupt stop of morphine is
/// flagged about 8.5 h later, within the 8–24 h onset after a short-acting opioid,
/// check).
pub const OPIOID_RATIO_HI: f64 = 0.6;
/// Opioid withdrawal risk is 1 at or below this fraction (assumption).
pub const OPIOID_RATIO_LO: f64 = 0.2;
/// Clonidine withdrawal risk is 0 while the plasma level is at least this fraction of
/// the baseline's steady plasma level (assumption, placed so that an abrupt stop is
/// flagged about a day later, within the 18–36 h onset reported after oral clonidine,
/// check).
pub const CLONIDINE_RATIO_HI: f64 = 0.6;
/// Clonidine withdrawal risk is 1 at or below this fraction (assumption).
pub const CLONIDINE_RATIO_LO: f64 = 0.2;

/// The concentration model of opioid respiratory depression (SIM-071) for one drug.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Respiration {
    /// Half-life of equilibration between the lumbar CSF and the respiratory centres
    /// (rostral spread), hours.
    pub effect_half_life_h: f64,
    /// Effect-site concentration (in CSF terms) giving half the maximal ventilatory
    /// depression in an opioid-naive adult, ng/mL.
    pub c50_csf_ng_per_ml: f64,
    /// Plasma concentration giving half the maximal ventilatory depression in an
    /// opioid-naive adult, ng/mL.
    pub c50_plasma_ng_per_ml: f64,
    /// Hill coefficient γ.
    pub hill: f64,
    /// Where the figures come from.
    pub source: &'static str,
}

/// Morphine (SIM-071). See `docs/models.md` for the sources.
pub const MORPHINE_RESPIRATION: Respiration = Respiration {
    effect_half_life_h: 3.0,
    c50_csf_ng_per_ml: 4_600.0,
    c50_plasma_ng_per_ml: 9.4,
    hill: 1.0,
    source: "effect t½ 3 h and CSF C50 4,600 ng/mL: a 0.6 mg intrathecal bolus peaks at C50 \
             about 3 h later, calibrated to Bailey et al., Anesthesiology 1993;79:49-59 \
             (assumption, check); plasma C50 33 nmol/L = 9.4 ng/mL, Dahan et al., \
             Anesthesiology 2004;101:1201-9 (check); γ 1 (assumption)",
};

/// Hydromorphone (SIM-071): morphine's model at five times the potency.
pub const HYDROMORPHONE_RESPIRATION: Respiration = Respiration {
    effect_half_life_h: 3.0,
    c50_csf_ng_per_ml: 4_600.0 / 5.0,
    c50_plasma_ng_per_ml: 9.4 / 5.0,
    hill: 1.0,
    source: "morphine's model with C50 ÷ 5, the usual intrathecal and parenteral \
             hydromorphone:morphine potency ratio (assumption, check)",
};

impl Respiration {
    /// The model for `drug`: morphine and hydromorphone; `None` for any other drug.
    pub fn of(drug: DrugId) -> Option<&'static Respiration> {
        match drug {
            DrugId::Morphine => Some(&MORPHINE_RESPIRATION),
            DrugId::Hydromorphone => Some(&HYDROMORPHONE_RESPIRATION),
            _ => None,
        }
    }

    /// Time constant of the effect compartment, hours: `t½ / ln 2`.
    pub fn effect_tau_h(&self) -> f64 {
        self.effect_half_life_h / core::f64::consts::LN_2
    }
}

/// The risks of a patient on several drugs (one [`Patient`] per drug), each the largest
/// over the drugs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Risks {
    /// Baclofen withdrawal risk.
    pub withdrawal: f64,
    /// Overdose (respiratory depression) risk.
    pub overdose: f64,
    /// Opioid withdrawal risk (SIM-070).
    pub opioid_withdrawal: f64,
    /// Clonidine withdrawal (rebound hypertension) risk (SIM-070).
    pub clonidine_withdrawal: f64,
    /// Opioid tolerance factor of the first opioid with a respiration model (NaN if
    /// none).
    pub opioid_tolerance: f64,
}

impl Risks {
    /// The risks of `patients`.
    pub fn of<'p>(patients: impl IntoIterator<Item = &'p Patient>) -> Risks {
        let mut r = Risks {
            opioid_tolerance: f64::NAN,
            ..Risks::default()
        };
        for p in patients {
            r.withdrawal = r.withdrawal.max(p.withdrawal_risk());
            r.overdose = r.overdose.max(p.overdose_risk());
            r.opioid_withdrawal = r.opioid_withdrawal.max(p.opioid_withdrawal_risk());
            r.clonidine_withdrawal = r.clonidine_withdrawal.max(p.clonidine_withdrawal_risk());
            if r.opioid_tolerance.is_nan() {
                if let Some(t) = p.opioid_tolerance() {
                    r.opioid_tolerance = t;
                }
            }
        }
        r
    }
}

/// Pharmacokinetic and pharmacodynamic parameters of one drug.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PkParams {
    /// The drug.
    pub drug: DrugId,
    /// Elimination half-life from lumbar CSF, hours.
    pub csf_half_life_h: f64,
    /// Clearance from CSF into the blood, mL/h.
    pub csf_clearance_ml_per_h: f64,
    /// Elimination half-life from plasma, hours.
    pub systemic_half_life_h: f64,
    /// Systemic volume of distribution, mL (70 kg adult).
    pub systemic_volume_ml: f64,
    /// Usual maintenance daily dose, ng/day: its steady CSF level gives effect 0.75.
    pub reference_daily_ng: f64,
    /// Overdose causes respiratory depression (opioids; baclofen: coma and respiratory
    /// depression, Lioresal Intrathecal label, check).
    pub respiratory_depressant: bool,
    /// Abrupt withdrawal is life-threatening and is scored (baclofen, DOMAIN.md §4).
    pub withdrawal_monitored: bool,
    /// Where the figures come from; *(check)* recalled, *(assumption)* chosen.
    pub source: &'static str,
}

const fn pk(
    drug: DrugId,
    csf: (f64, f64),
    systemic: (f64, f64),
    reference_daily_ng: f64,
    flags: (bool, bool),
    source: &'static str,
) -> PkParams {
    PkParams {
        drug,
        csf_half_life_h: csf.0,
        csf_clearance_ml_per_h: csf.1,
        systemic_half_life_h: systemic.0,
        systemic_volume_ml: systemic.1,
        reference_daily_ng,
        respiratory_depressant: flags.0,
        withdrawal_monitored: flags.1,
        source,
    }
}

/// The parameter table, in [`DrugId::ALL`] order. See `docs/models.md` for the sources
/// of each value.
pub const PK_TABLE: [PkParams; 9] = [
    pk(
        DrugId::Morphine,
        (1.5, 15.0),
        (2.5, 245_000.0),
        3_000_000.0,
        (true, false),
        "CSF t½ 1.5 h (check), CL 15 mL/h (assumption); plasma t½ 2.5 h, Vd 3.5 L/kg (check); \
         maintenance 3 mg/day (assumption)",
    ),
    pk(
        DrugId::Hydromorphone,
        (1.5, 15.0),
        (2.5, 280_000.0),
        600_000.0,
        (true, false),
        "CSF as morphine (assumption); plasma t½ 2.5 h, Vd 4 L/kg (check); maintenance \
         0.6 mg/day, morphine ÷ 5 (assumption)",
    ),
    pk(
        DrugId::Fentanyl,
        (1.0, 60.0),
        (3.5, 280_000.0),
        150_000.0,
        (true, false),
        "lipophilic: CSF t½ 1 h, CL 60 mL/h (assumption); plasma t½ 3.5 h, Vd 4 L/kg \
         (check); maintenance 150 mcg/day (assumption)",
    ),
    pk(
        DrugId::Sufentanil,
        (0.8, 80.0),
        (2.7, 175_000.0),
        30_000.0,
        (true, false),
        "lipophilic: CSF t½ 0.8 h, CL 80 mL/h (assumption); plasma t½ 2.7 h, Vd 2.5 L/kg \
         (check); maintenance 30 mcg/day (assumption)",
    ),
    pk(
        DrugId::Bupivacaine,
        (1.0, 40.0),
        (2.7, 70_000.0),
        8_000_000.0,
        (false, false),
        "CSF t½ 1 h, CL 40 mL/h (assumption); plasma t½ 2.7 h, Vd 1 L/kg (check); \
         maintenance 8 mg/day (assumption)",
    ),
    pk(
        DrugId::Clonidine,
        (1.3, 40.0),
        (12.0, 140_000.0),
        150_000.0,
        (false, false),
        "CSF t½ 1.3 h (check), CL 40 mL/h (assumption); plasma t½ 12 h, Vd 2 L/kg \
         (check); maintenance 150 mcg/day (assumption)",
    ),
    pk(
        DrugId::Ziconotide,
        (4.6, 22.8),
        (1.3, 30_460.0),
        6_000.0,
        (false, false),
        "Prialt label table 2: CSF t½ 4.6 h, CL 0.38 mL/min, Vd 155 mL; plasma t½ 1.3 h, \
         Vd 30,460 mL; maintenance 6 mcg/day (assumption)",
    ),
    pk(
        DrugId::Baclofen,
        (2.0, 30.0),
        (4.0, 50_000.0),
        500_000.0,
        (true, true),
        "Kroin & Penn, Eur J Clin Pharmacol: CSF t½ 0.9-5 h, CL 13-80 mL/h, chose 2 h and \
         30 mL/h (check); plasma t½ 4 h, Vd 0.7 L/kg (oral label, check); maintenance \
         500 mcg/day within 300-800 (DOMAIN.md §4, check)",
    ),
    pk(
        DrugId::Saline,
        (1.0, 30.0),
        (1.0, 50_000.0),
        0.0,
        (false, false),
        "no drug: placeholder values, effect and risks are 0",
    ),
];

impl PkParams {
    /// The table entry for `drug`.
    pub fn of(drug: DrugId) -> &'static PkParams {
        // The table is in DrugId::ALL order; the search keeps this robust to reordering.
        PK_TABLE
            .iter()
            .find(|p| p.drug == drug)
            .unwrap_or(&PK_TABLE[PK_TABLE.len() - 1])
    }

    /// CSF elimination rate constant, 1/h.
    pub fn k_csf(&self) -> f64 {
        core::f64::consts::LN_2 / self.csf_half_life_h
    }

    /// Systemic elimination rate constant, 1/h.
    pub fn k_systemic(&self) -> f64 {
        core::f64::consts::LN_2 / self.systemic_half_life_h
    }

    /// Apparent CSF volume of distribution, mL: `CL_csf / k_csf`.
    pub fn csf_volume_ml(&self) -> f64 {
        self.csf_clearance_ml_per_h / self.k_csf()
    }

    /// Systemic clearance, mL/h: `k_sys × V_sys`.
    pub fn systemic_clearance_ml_per_h(&self) -> f64 {
        self.k_systemic() * self.systemic_volume_ml
    }

    /// Steady CSF concentration under `daily_ng` ng/day, ng/mL.
    pub fn steady_csf_ng_per_ml(&self, daily_ng: f64) -> f64 {
        daily_ng / 24.0 / self.csf_clearance_ml_per_h
    }

    /// Steady systemic concentration under `daily_ng` ng/day intrathecally, ng/mL.
    pub fn steady_systemic_ng_per_ml(&self, daily_ng: f64) -> f64 {
        daily_ng / 24.0 / self.systemic_clearance_ml_per_h()
    }

    /// EC50 for a patient of unit sensitivity, ng/mL: a third of the steady CSF level
    /// of the reference dose, so that `C/(C + EC50) = 0.75` there.
    pub fn ec50_ng_per_ml(&self) -> f64 {
        self.steady_csf_ng_per_ml(self.reference_daily_ng) / 3.0
    }
}

/// What the therapy treats: sets the daily rhythm of the symptoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indication {
    /// Spasticity: worst in the early morning, at [`Indication::worst_hour`] 07:00
    /// (hence flex dosing with more baclofen before waking, DOMAIN.md §3).
    Spasticity,
    /// Chronic pain: worst in the evening, 20:00 (assumption).
    Pain,
}

impl Indication {
    /// Hour of day at which the symptoms are worst.
    pub const fn worst_hour(self) -> f64 {
        match self {
            Indication::Spasticity => 7.0,
            Indication::Pain => 20.0,
        }
    }
}

/// The patient's condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// What the therapy treats.
    pub indication: Indication,
    /// Spinal injury at T6 or above: the highest baclofen withdrawal risk (DOMAIN.md §4).
    pub high_risk: bool,
    /// Not taking opioids before: the overdose reference is the usual starting dose,
    /// not the hard limit.
    pub opioid_naive: bool,
    /// Drug sensitivity: divides EC50 (1 typical; a population may draw it).
    pub sensitivity: f64,
}

impl Condition {
    /// Spasticity, not high risk.
    pub const fn spasticity() -> Self {
        Condition {
            indication: Indication::Spasticity,
            high_risk: false,
            opioid_naive: false,
            sensitivity: 1.0,
        }
    }

    /// Spasticity after a spinal injury at T6 or above (high withdrawal risk).
    pub const fn spinal_injury_t6_or_above() -> Self {
        Condition {
            high_risk: true,
            ..Condition::spasticity()
        }
    }

    /// Chronic pain, opioid tolerant.
    pub const fn pain() -> Self {
        Condition {
            indication: Indication::Pain,
            ..Condition::spasticity()
        }
    }

    /// Chronic pain, opioid naive.
    pub const fn pain_opioid_naive() -> Self {
        Condition {
            opioid_naive: true,
            ..Condition::pain()
        }
    }

    /// The usual condition for `drug`: spasticity for baclofen, pain otherwise.
    pub const fn typical(drug: DrugId) -> Self {
        match drug {
            DrugId::Baclofen => Condition::spasticity(),
            _ => Condition::pain(),
        }
    }
}

/// The multiplicative daily rhythm of the effect at `hour_of_day`:
/// `1 − A·(1 + cos(2π(h − worst)/24))/2`, `1 − A` at the worst hour, 1 twelve hours
/// later.
pub fn rhythm(indication: Indication, hour_of_day: f64) -> f64 {
    let phase = core::f64::consts::TAU * (hour_of_day - indication.worst_hour()) / 24.0;
    1.0 - RHYTHM_AMPLITUDE * (1.0 + phase.cos()) / 2.0
}

/// A risk score from a level ratio: 0 at or above `hi`, 1 at or below `lo`, linear
/// between.
fn ramp_down(r: f64, hi: f64, lo: f64) -> f64 {
    ((hi - r) / (hi - lo)).clamp(0.0, 1.0)
}

/// Withdrawal score for a ratio of a recent average to the baseline: normal thresholds
/// (0.75, 0.25), high risk (0.9, 0.4).
pub fn withdrawal_score(ratio: f64, high_risk: bool) -> f64 {
    if high_risk {
        ramp_down(ratio, 0.9, 0.4)
    } else {
        ramp_down(ratio, 0.75, 0.25)
    }
}

/// Overdose score for `u`, the level as a multiple of the reference steady level:
/// `clamp((u − 1) / (2 × (3 − 1)))`, 0.5 at [`OVERDOSE_FLAG_MULTIPLE`].
pub fn overdose_score(u: f64) -> f64 {
    ((u - 1.0) / (2.0 * (OVERDOSE_FLAG_MULTIPLE - 1.0))).clamp(0.0, 1.0)
}

/// `(e^{−kt} − e^{−mt}) / (m − k)`, symmetric in `k` and `m`, stable when they are
/// close (limit `t·e^{−kt}`) and when `t` is large.
fn exp_diff(k: f64, m: f64, t: f64) -> f64 {
    let (lo, hi) = if k <= m { (k, m) } else { (m, k) };
    let d = hi - lo;
    let frac = if d * t < 1e-12 {
        t
    } else {
        -(-d * t).exp_m1() / d
    };
    (-lo * t).exp() * frac
}

/// Exact solution at `t` of `x' = p + q·e^{−kt} − m·x`, `x(0) = x0`, `m > 0`.
fn solve(x0: f64, p: f64, q: f64, k: f64, m: f64, t: f64) -> f64 {
    let x_inf = p / m;
    x_inf + (x0 - x_inf) * (-m * t).exp() + q * exp_diff(k, m, t)
}

/// One patient on one drug.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    /// The drug.
    pub drug: DrugId,
    /// The patient's condition.
    pub condition: Condition,
    /// The drug's parameters (a copy of [`PkParams::of`], which a scenario may change).
    pub params: PkParams,
    a_csf_ng: f64,
    a_sys_ng: f64,
    infusion_csf_ng_per_h: f64,
    infusion_sys_ng_per_h: f64,
    fast_ng_per_ml: f64,
    slow_ng_per_ml: f64,
    baseline_ng_per_ml: f64,
    /// Opioid effect-site concentration for respiration, ng/mL (SIM-071).
    effect_site_ng_per_ml: f64,
    /// The CSF level the patient's opioid tolerance corresponds to, ng/mL: a 7-day
    /// average of `C_csf` (SIM-071).
    tolerance_ng_per_ml: f64,
}

impl Patient {
    /// A patient with no drug on board.
    pub fn new(drug: DrugId, condition: Condition) -> Self {
        Patient {
            drug,
            condition,
            params: *PkParams::of(drug),
            a_csf_ng: 0.0,
            a_sys_ng: 0.0,
            infusion_csf_ng_per_h: 0.0,
            infusion_sys_ng_per_h: 0.0,
            fast_ng_per_ml: 0.0,
            slow_ng_per_ml: 0.0,
            baseline_ng_per_ml: 0.0,
            effect_site_ng_per_ml: 0.0,
            tolerance_ng_per_ml: 0.0,
        }
    }

    /// A patient established on `daily_ng` ng/day intrathecally: both compartments and
    /// all three averages at their steady levels (no infusion is set: the engine's
    /// strokes keep it there).
    pub fn at_steady_state(drug: DrugId, condition: Condition, daily_ng: f64) -> Self {
        let mut p = Patient::new(drug, condition);
        let rate = daily_ng.max(0.0) / 24.0;
        p.a_csf_ng = rate / p.params.k_csf();
        p.a_sys_ng = rate / p.params.k_systemic();
        let c = p.csf_ng_per_ml();
        p.fast_ng_per_ml = c;
        p.slow_ng_per_ml = c;
        p.baseline_ng_per_ml = c;
        p.effect_site_ng_per_ml = c;
        if !p.condition.opioid_naive {
            p.tolerance_ng_per_ml = c;
        }
        p
    }

    /// A bolus of `ng` into the CSF (what left the catheter tip).
    pub fn dose_csf(&mut self, ng: f64) {
        self.a_csf_ng += ng.max(0.0);
    }

    /// `ng` straight into the blood (a pocket fill or a leak into the tissue; absorption
    /// is taken as immediate, the worst case for the peak, assumption).
    pub fn dose_systemic(&mut self, ng: f64) {
        self.a_sys_ng += ng.max(0.0);
    }

    /// A constant infusion into the CSF from now on, ng/h (0 to stop).
    pub fn set_infusion_csf(&mut self, ng_per_h: f64) {
        self.infusion_csf_ng_per_h = ng_per_h.max(0.0);
    }

    /// A constant infusion into the blood from now on, ng/h (0 to stop).
    pub fn set_infusion_systemic(&mut self, ng_per_h: f64) {
        self.infusion_sys_ng_per_h = ng_per_h.max(0.0);
    }

    /// Advances `dt_h` hours, exactly (no-op for `dt_h ≤ 0`).
    pub fn advance(&mut self, dt_h: f64) {
        if dt_h <= 0.0 || dt_h.is_nan() {
            return;
        }
        let t = dt_h;
        let k = self.params.k_csf();
        let ke = self.params.k_systemic();
        let v = self.params.csf_volume_ml();
        let a_inf = self.infusion_csf_ng_per_h / k;
        let a = self.a_csf_ng - a_inf;
        // A_csf(s) = a_inf + a·e^{−ks}, the input to everything else.
        let a_sys = solve(
            self.a_sys_ng,
            self.infusion_csf_ng_per_h + self.infusion_sys_ng_per_h,
            k * a,
            k,
            ke,
            t,
        );
        let filter =
            |x0: f64, tau: f64| solve(x0, a_inf / (v * tau), a / (v * tau), k, 1.0 / tau, t);
        self.fast_ng_per_ml = filter(self.fast_ng_per_ml, FAST_TAU_H);
        self.slow_ng_per_ml = filter(self.slow_ng_per_ml, SLOW_TAU_H);
        self.baseline_ng_per_ml = filter(self.baseline_ng_per_ml, BASELINE_TAU_H);
        if let Some(r) = Respiration::of(self.drug) {
            self.effect_site_ng_per_ml = filter(self.effect_site_ng_per_ml, r.effect_tau_h());
            self.tolerance_ng_per_ml = filter(self.tolerance_ng_per_ml, TOLERANCE_TAU_H);
        }
        self.a_sys_ng = a_sys.max(0.0);
        self.a_csf_ng = (a_inf + a * (-k * t).exp()).max(0.0);
    }

    /// Drug in the CSF, ng.
    pub fn csf_ng(&self) -> f64 {
        self.a_csf_ng
    }

    /// Drug in the body outside the CSF, ng.
    pub fn systemic_ng(&self) -> f64 {
        self.a_sys_ng
    }

    /// CSF concentration, ng/mL.
    pub fn csf_ng_per_ml(&self) -> f64 {
        self.a_csf_ng / self.params.csf_volume_ml()
    }

    /// Systemic (plasma) concentration, ng/mL.
    pub fn systemic_ng_per_ml(&self) -> f64 {
        self.a_sys_ng / self.params.systemic_volume_ml
    }

    /// The 6-hour, 24-hour and 3-day averages of the CSF concentration, ng/mL.
    pub fn csf_averages(&self) -> (f64, f64, f64) {
        (
            self.fast_ng_per_ml,
            self.slow_ng_per_ml,
            self.baseline_ng_per_ml,
        )
    }

    /// This patient's EC50, ng/mL.
    pub fn ec50_ng_per_ml(&self) -> f64 {
        self.params.ec50_ng_per_ml() / self.condition.sensitivity.max(f64::MIN_POSITIVE)
    }

    /// Symptom control at `hour_of_day` (0..24), 0 (none) to 1 (full).
    pub fn effect(&self, hour_of_day: f64) -> f64 {
        let ec50 = self.ec50_ng_per_ml();
        let c = self.csf_ng_per_ml();
        if ec50 <= 0.0 || c <= 0.0 {
            return 0.0;
        }
        (c / (c + ec50) * rhythm(self.condition.indication, hour_of_day)).clamp(0.0, 1.0)
    }

    fn withdrawal_ratio(&self, average: f64) -> Option<f64> {
        let established = ESTABLISHED_FRACTION
            * self
                .params
                .steady_csf_ng_per_ml(self.params.reference_daily_ng);
        (self.params.withdrawal_monitored
            && established > 0.0
            && self.baseline_ng_per_ml >= established)
            .then(|| average / self.baseline_ng_per_ml)
    }

    /// Withdrawal risk, 0..1, from the 6-hour average against the 3-day baseline
    /// (0 for a drug whose withdrawal is not scored, or a patient not established).
    pub fn withdrawal_risk(&self) -> f64 {
        self.withdrawal_ratio(self.fast_ng_per_ml)
            .map_or(0.0, |r| withdrawal_score(r, self.condition.high_risk))
    }

    /// Withdrawal severity, 0..1, from the 24-hour average: how far the syndrome has
    /// progressed (reaches 1 some 2 days after an abrupt stop).
    pub fn withdrawal_severity(&self) -> f64 {
        self.withdrawal_ratio(self.slow_ng_per_ml)
            .map_or(0.0, |r| withdrawal_score(r, self.condition.high_risk))
    }

    /// Whether the withdrawal risk is at least [`FLAG_AT`].
    pub fn withdrawal_flagged(&self) -> bool {
        self.withdrawal_risk() >= FLAG_AT
    }

    /// Sets the patient's opioid tolerance to that of someone established on `daily_ng`
    /// ng/day intrathecally (the 7-day average at that dose's steady CSF level). The
    /// engine calls it at the start of a run for an opioid-tolerant patient (SIM-071).
    pub fn set_opioid_tolerance(&mut self, daily_ng: f64) {
        self.tolerance_ng_per_ml = self.params.steady_csf_ng_per_ml(daily_ng.max(0.0));
    }

    /// The opioid's potency-weighted exposure `u = Ce/C50,csf + C_sys/C50,sys`
    /// (dimensionless; 0 for a drug without a [`Respiration`] model).
    pub fn opioid_exposure(&self) -> f64 {
        Respiration::of(self.drug).map_or(0.0, |r| {
            self.effect_site_ng_per_ml / r.c50_csf_ng_per_ml
                + self.systemic_ng_per_ml() / r.c50_plasma_ng_per_ml
        })
    }

    /// The tolerance factor `T = 1 + β·u_tol` ([`TOLERANCE_GAIN`]), where `u_tol` is the
    /// steady exposure that the 7-day CSF average corresponds to
    /// (`C_sys,ss = C_csf,ss × CL_csf / CL_sys`).
    /// 1 for a naive patient; `None` for a drug without a [`Respiration`] model.
    pub fn opioid_tolerance(&self) -> Option<f64> {
        Respiration::of(self.drug).map(|r| {
            let b = self.tolerance_ng_per_ml;
            let sys =
                b * self.params.csf_clearance_ml_per_h / self.params.systemic_clearance_ml_per_h();
            1.0 + TOLERANCE_GAIN * (b / r.c50_csf_ng_per_ml + sys / r.c50_plasma_ng_per_ml)
        })
    }

    /// Fractional ventilatory depression, 0..1: the sigmoid Emax (Hill) model
    /// `D = v^γ / (1 + v^γ)`, `v = u / T`, with `Emax = 1`. Flagged (≥ 0.5) when the
    /// exposure reaches the tolerance factor, which steady therapy never does (there
    /// `u = (T − 1)/β`).
    pub fn ventilatory_depression(&self) -> f64 {
        let (Some(r), Some(t)) = (Respiration::of(self.drug), self.opioid_tolerance()) else {
            return 0.0;
        };
        let v = (self.opioid_exposure() / t).max(0.0);
        let vg = v.powf(r.hill);
        if vg.is_finite() { vg / (1.0 + vg) } else { 1.0 }
    }

    fn established(&self) -> bool {
        let established = ESTABLISHED_FRACTION
            * self
                .params
                .steady_csf_ng_per_ml(self.params.reference_daily_ng);
        established > 0.0 && self.baseline_ng_per_ml >= established
    }

    /// Opioid withdrawal risk, 0..1 (SIM-070): for an opioid, the 6-hour average of
    /// `C_csf` against the 3-day baseline, `r = fast / baseline`, scored
    /// `clamp((0.6 − r) / 0.4)` (flagged at `r ≤ 0.4`); 0 for another drug or a patient
    /// not established.
    pub fn opioid_withdrawal_risk(&self) -> f64 {
        if !self.drug.class().is_opioid() || !self.established() {
            return 0.0;
        }
        ramp_down(
            self.fast_ng_per_ml / self.baseline_ng_per_ml,
            OPIOID_RATIO_HI,
            OPIOID_RATIO_LO,
        )
    }

    /// Clonidine withdrawal (rebound hypertension) risk, 0..1 (SIM-070): the plasma
    /// level against the steady plasma level of the 3-day CSF baseline,
    /// `r = C_sys / (B × CL_csf / CL_sys)`, scored `clamp((0.6 − r) / 0.4)` (flagged at
    /// `r ≤ 0.4`); 0 for another drug or a patient not established.
    pub fn clonidine_withdrawal_risk(&self) -> f64 {
        if self.drug != DrugId::Clonidine || !self.established() {
            return 0.0;
        }
        let steady_sys = self.baseline_ng_per_ml * self.params.csf_clearance_ml_per_h
            / self.params.systemic_clearance_ml_per_h();
        ramp_down(
            self.systemic_ng_per_ml() / steady_sys,
            CLONIDINE_RATIO_HI,
            CLONIDINE_RATIO_LO,
        )
    }

    /// The effect-site concentration for respiration and the 7-day tolerance average of
    /// `C_csf`, ng/mL (0 for a drug without a [`Respiration`] model).
    pub fn opioid_averages(&self) -> (f64, f64) {
        (self.effect_site_ng_per_ml, self.tolerance_ng_per_ml)
    }

    /// Gives the patient what left the catheter tip over the last `dt_h` hours: `to_csf`
    /// ng into the CSF and `to_tissue` ng into the blood, as constant infusions over the
    /// interval (impulses when `dt_h` is 0), advancing to the interval's end.
    pub fn receive(&mut self, to_csf: f64, to_tissue: f64, dt_h: f64) {
        if dt_h > 0.0 {
            self.set_infusion_csf(to_csf / dt_h);
            self.set_infusion_systemic(to_tissue / dt_h);
            self.advance(dt_h);
            self.set_infusion_csf(0.0);
            self.set_infusion_systemic(0.0);
        } else {
            self.dose_csf(to_csf);
            self.dose_systemic(to_tissue);
        }
    }

    /// The daily dose whose steady levels are the overdose reference, ng/day: the hard
    /// maximum daily dose of the rx library, or for an opioid-naive patient on an opioid
    /// the top of the usual starting range. `None` for a drug not scored.
    pub fn overdose_reference_daily_ng(&self) -> Option<f64> {
        if !self.params.respiratory_depressant {
            return None;
        }
        let info = self.drug.info();
        let naive = self.condition.opioid_naive && self.drug.class().is_opioid();
        let rate = if naive {
            info.usual_start.map(|s| s.value.1)
        } else {
            info.max_daily_dose
                .or(info.recommended_max_daily_dose)
                .map(|s| s.value)
        };
        rate.map(|r| r.raw() as f64).filter(|r| *r > 0.0)
    }

    /// Overdose (respiratory depression) risk, 0..1: for morphine and hydromorphone the
    /// ventilatory depression of the concentration model ([`Patient::ventilatory_depression`],
    /// SIM-071); for the other respiratory depressants (fentanyl, sufentanil, baclofen) the
    /// level against the hard limit's steady level.
    pub fn overdose_risk(&self) -> f64 {
        if Respiration::of(self.drug).is_some() {
            return self.ventilatory_depression();
        }
        let Some(daily) = self.overdose_reference_daily_ng() else {
            return 0.0;
        };
        let u_csf = self.csf_ng_per_ml() / self.params.steady_csf_ng_per_ml(daily);
        let u_sys = self.systemic_ng_per_ml() / self.params.steady_systemic_ng_per_ml(daily);
        overdose_score(u_csf.max(u_sys))
    }

    /// Whether the overdose risk is at least [`FLAG_AT`].
    pub fn overdose_flagged(&self) -> bool {
        self.overdose_risk() >= FLAG_AT
    }
}

/// How the patient uses the bolus remote. Event-driven: the engine asks
/// [`BolusBehaviour::next_press_after`] for the time of the next press, schedules it,
/// and when it comes due presses only if [`BolusBehaviour::wants_to_press`] still holds
/// for the current effect; then asks again. When it returns `None` the engine asks
/// again at its next sampling tick. Waiting times are exponential (memoryless), so
/// dropping a scheduled press and drawing afresh when the effect changes is
/// statistically the same process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BolusBehaviour {
    /// Never presses.
    Never,
    /// Presses at random (Poisson, `per_hour` presses per hour on average) while the
    /// effect is below `threshold`.
    WhenPoor {
        /// Effect below which the patient wants more.
        threshold: f64,
        /// Mean presses per hour while wanting more.
        per_hour: f64,
    },
    /// Presses every 60 s regardless (a stress test of the lockout).
    EveryMinute,
}

impl BolusBehaviour {
    /// Whether the patient, at this effect, wants to press.
    pub fn wants_to_press(&self, effect: f64) -> bool {
        match *self {
            BolusBehaviour::Never => false,
            BolusBehaviour::WhenPoor {
                threshold,
                per_hour,
            } => effect < threshold && per_hour > 0.0,
            BolusBehaviour::EveryMinute => true,
        }
    }

    /// The time of the next press after `t_h`, hours, or `None` if the patient does not
    /// want one now. `WhenPoor` makes one exponential draw when it returns a time;
    /// the others draw nothing.
    pub fn next_press_after(&self, rng: &mut impl Rng, t_h: f64, effect: f64) -> Option<f64> {
        match *self {
            BolusBehaviour::Never => None,
            BolusBehaviour::EveryMinute => Some(t_h + 1.0 / 60.0),
            BolusBehaviour::WhenPoor { per_hour, .. } => {
                if !self.wants_to_press(effect) {
                    return None;
                }
                let e: f64 = rng.sample(Exp1);
                Some(t_h + e / per_hour)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::{close, rng};

    fn rel(a: f64, b: f64, tol: f64) {
        close(a / b, 1.0, tol);
    }

    #[test]
    fn table_derived_values_sim_013() {
        for (p, d) in PK_TABLE.iter().zip(DrugId::ALL) {
            assert_eq!(p.drug, d, "table order");
            assert!(p.csf_half_life_h > 0.0 && p.csf_clearance_ml_per_h > 0.0);
            assert!(p.systemic_half_life_h > 0.0 && p.systemic_volume_ml > 0.0);
            assert!(!p.source.is_empty());
        }
        // Baclofen: V = 30 × 2 / ln 2 = 86.56 mL; steady at 500 mcg/day =
        // 500,000 / 24 / 30 = 694.44 ng/mL; EC50 = 231.48 ng/mL.
        let b = PkParams::of(DrugId::Baclofen);
        close(b.csf_volume_ml(), 86.562, 1e-3);
        close(b.steady_csf_ng_per_ml(500_000.0), 694.444, 1e-3);
        close(b.ec50_ng_per_ml(), 231.481, 1e-3);
        // Ziconotide: V = 22.8 × 4.6 / ln 2 = 151.3 mL, the label's 155 ± 263.
        close(
            PkParams::of(DrugId::Ziconotide).csf_volume_ml(),
            151.31,
            0.01,
        );
        // Morphine plasma clearance = ln 2 / 2.5 × 245,000 = 67,928.4 mL/h.
        close(
            PkParams::of(DrugId::Morphine).systemic_clearance_ml_per_h(),
            67_928.4,
            0.1,
        );
    }

    #[test]
    fn a_bolus_decays_and_moves_to_the_blood_sim_013() {
        let mut p = Patient::new(DrugId::Baclofen, Condition::spasticity());
        p.dose_csf(100_000.0);
        // 100,000 ng / 86.562 mL = 1155.2 ng/mL; one half-life (2 h) later 577.6.
        close(p.csf_ng_per_ml(), 1155.245, 1e-3);
        p.advance(2.0);
        close(p.csf_ng_per_ml(), 577.623, 1e-3);
        // A_sys = A0·k/(k_s − k)·(e^{−2k} − e^{−2k_s}) with k = 2 k_s:
        // 100,000 × (−2) × (0.5 − 0.70711) = 41,421 ng; / 50,000 mL = 0.8284 ng/mL.
        close(p.systemic_ng(), 41_421.36, 0.01);
        close(p.systemic_ng_per_ml(), 0.828_427, 1e-6);
        // Mass: CSF + blood ≤ dose, and what is left decays away.
        assert!(p.csf_ng() + p.systemic_ng() < 100_000.0);
        p.advance(24.0 * 14.0);
        assert!(p.csf_ng() + p.systemic_ng() < 1e-6);
    }

    #[test]
    fn result_does_not_depend_on_the_step_sim_013() {
        let run = |steps: &[f64]| {
            let mut p =
                Patient::at_steady_state(DrugId::Baclofen, Condition::spasticity(), 400_000.0);
            p.dose_csf(50_000.0);
            p.dose_systemic(1e6);
            p.set_infusion_csf(25_000.0);
            p.set_infusion_systemic(100.0);
            for s in steps {
                p.advance(*s);
            }
            p
        };
        let one = run(&[48.0]);
        let hourly = run(&[1.0; 48]);
        let uneven = run(&[0.001, 3.7, 0.25, 20.0, 0.049, 24.0]);
        for other in [&hourly, &uneven] {
            rel(other.csf_ng(), one.csf_ng(), 1e-10);
            rel(other.systemic_ng(), one.systemic_ng(), 1e-10);
            let (a, b, c) = other.csf_averages();
            let (x, y, z) = one.csf_averages();
            rel(a, x, 1e-10);
            rel(b, y, 1e-10);
            rel(c, z, 1e-10);
        }
        // Equal rate constants (the filter limit) are handled: k_csf = 1/τ_fast.
        let mut p = Patient::new(DrugId::Baclofen, Condition::spasticity());
        p.params.csf_half_life_h = FAST_TAU_H * core::f64::consts::LN_2;
        p.dose_csf(1000.0);
        let c0 = p.csf_ng_per_ml();
        p.advance(6.0);
        // x' = (C0 e^{−t/τ} − x)/τ, x0 = 0 → x = C0 (t/τ) e^{−t/τ} = C0/e at t = τ.
        close(p.csf_averages().0, c0 / core::f64::consts::E, 1e-9);
    }

    #[test]
    fn steady_infusion_gives_the_reference_effect_with_a_rhythm_sim_013() {
        let mut p = Patient::new(DrugId::Baclofen, Condition::spasticity());
        p.set_infusion_csf(500_000.0 / 24.0);
        p.advance(24.0 * 30.0);
        close(p.csf_ng_per_ml(), 694.444, 1e-3);
        // 0.75 at the best hour (19:00), 0.75 × 0.85 = 0.6375 at 07:00.
        close(p.effect(19.0), 0.75, 1e-9);
        close(p.effect(7.0), 0.6375, 1e-9);
        close(p.effect(13.0), 0.75 * 0.925, 1e-9);
        // The same dose as strokes: 250 nL of 2000 mcg/mL = 500 ng, 1000 a day.
        let mut s = Patient::new(DrugId::Baclofen, Condition::spasticity());
        for _ in 0..1000 * 30 {
            s.dose_csf(500.0);
            s.advance(0.024);
        }
        rel(s.csf_ng_per_ml(), 694.444, 0.01);
        // Twice as sensitive: EC50 halves → 694.4/(694.4 + 115.7) = 6/7.
        let sensitive = Patient {
            condition: Condition {
                sensitivity: 2.0,
                ..Condition::spasticity()
            },
            ..p.clone()
        };
        close(sensitive.effect(19.0), 6.0 / 7.0, 1e-9);
        // Pain is worst at 20:00; saline has no effect.
        close(rhythm(Indication::Pain, 20.0), 0.85, 1e-12);
        close(rhythm(Indication::Pain, 8.0), 1.0, 1e-12);
        let mut saline = Patient::new(DrugId::Saline, Condition::pain());
        saline.dose_csf(1e6);
        close(saline.effect(12.0), 0.0, 0.0);
        close(saline.withdrawal_risk(), 0.0, 0.0);
        close(saline.overdose_risk(), 0.0, 0.0);
    }

    #[test]
    fn withdrawal_score_thresholds_sim_013() {
        close(withdrawal_score(1.0, false), 0.0, 0.0);
        close(withdrawal_score(0.75, false), 0.0, 0.0);
        close(withdrawal_score(0.5, false), 0.5, 1e-12);
        close(withdrawal_score(0.25, false), 1.0, 0.0);
        close(withdrawal_score(0.6, true), 0.6, 1e-12);
        close(withdrawal_score(0.65, true), 0.5, 1e-12);
    }

    #[test]
    fn abrupt_baclofen_stop_is_flagged_within_hours_sim_013() {
        let mut p = Patient::at_steady_state(DrugId::Baclofen, Condition::spasticity(), 500_000.0);
        close(p.withdrawal_risk(), 0.0, 0.0);
        // Stop. By hand (C0 = 1, k = ln2/2, τ 6 h and 72 h):
        // fast(6) = 1.9265·e^{−1} − 0.9265·e^{−2.079} = 0.5929,
        // base(6) = 1.04174·e^{−1/12} − 0.04174·e^{−2.079} = 0.9532,
        // r = 0.622 → risk (0.75 − 0.622)/0.5 = 0.256.
        p.advance(6.0);
        close(p.csf_averages().0 / p.csf_averages().2, 0.622, 0.001);
        close(p.withdrawal_risk(), 0.256, 0.002);
        assert!(!p.withdrawal_flagged());
        // fast(8) = 0.4499, base(8) = 0.9297, r = 0.484 → 0.532: flagged.
        p.advance(2.0);
        close(p.withdrawal_risk(), 0.532, 0.002);
        assert!(p.withdrawal_flagged());
        close(p.withdrawal_severity(), 0.0, 0.0);
        p.advance(16.0);
        close(p.withdrawal_risk(), 1.0, 0.0);
        // Severity from the 24-hour average: slow(24)/base(24) = 0.418/0.746 = 0.560
        // → 0.38 at 24 h; 0.70 at 36 h; > 0.9 at 48 h.
        close(p.withdrawal_severity(), 0.38, 0.01);
        p.advance(12.0);
        close(p.withdrawal_severity(), 0.70, 0.01);
        p.advance(12.0);
        assert!(p.withdrawal_severity() > 0.9);

        // High risk (T6 or above): flagged already at 6 h (r 0.622 → 0.556).
        let mut h = Patient::at_steady_state(
            DrugId::Baclofen,
            Condition::spinal_injury_t6_or_above(),
            500_000.0,
        );
        h.advance(6.0);
        close(h.withdrawal_risk(), 0.556, 0.002);
        assert!(h.withdrawal_flagged());
    }

    #[test]
    fn a_halved_dose_flags_only_the_high_risk_patient_sim_013() {
        let sim = |cond: Condition| {
            let mut p = Patient::at_steady_state(DrugId::Baclofen, cond, 500_000.0);
            p.set_infusion_csf(250_000.0 / 24.0);
            let mut worst: f64 = 0.0;
            for _ in 0..5 * 24 {
                p.advance(1.0);
                worst = worst.max(p.withdrawal_risk());
            }
            worst
        };
        let normal = sim(Condition::spasticity());
        let high = sim(Condition::spinal_injury_t6_or_above());
        assert!(normal > 0.2 && normal < 0.5, "{normal}");
        assert!(high >= 0.5, "{high}");
        // A patient never established on baclofen has no withdrawal risk.
        let mut naive = Patient::new(DrugId::Baclofen, Condition::spasticity());
        naive.dose_csf(1.0);
        naive.advance(100.0);
        close(naive.withdrawal_risk(), 0.0, 0.0);
        // Nor does a drug whose withdrawal is not scored.
        let mut m = Patient::at_steady_state(DrugId::Morphine, Condition::pain(), 3e6);
        m.advance(48.0);
        close(m.withdrawal_risk(), 0.0, 0.0);
    }

    #[test]
    fn overdose_risk_of_the_other_drugs_against_the_hard_limit_sim_013() {
        // Fentanyl keeps the ratio model: at its 1000 mcg/day hard limit, risk 0; three
        // times it, flagged at exactly 0.5.
        let f = Patient::at_steady_state(DrugId::Fentanyl, Condition::pain(), 1e6);
        close(f.overdose_risk(), 0.0, 1e-9);
        let f3 = Patient::at_steady_state(DrugId::Fentanyl, Condition::pain(), 3e6);
        close(f3.overdose_risk(), 0.5, 1e-9);
        assert!(f3.overdose_flagged());
        // Baclofen is scored against its 2000 mcg/day library maximum; ziconotide is
        // not scored.
        let b = Patient::at_steady_state(DrugId::Baclofen, Condition::spasticity(), 8e6);
        close(b.overdose_risk(), 0.75, 1e-9);
        let z = Patient::at_steady_state(DrugId::Ziconotide, Condition::pain(), 1e9);
        close(z.overdose_risk(), 0.0, 0.0);
        close(overdose_score(3.0), 0.5, 1e-12);
        close(overdose_score(5.0), 1.0, 0.0);
        // An opioid-naive patient on fentanyl: the reference is the top of the usual
        // starting range (75 mcg/day), so 150 mcg/day is 2× → 0.25.
        let naive =
            Patient::at_steady_state(DrugId::Fentanyl, Condition::pain_opioid_naive(), 150e3);
        close(
            naive.overdose_reference_daily_ng().unwrap_or(0.0),
            75_000.0,
            0.0,
        );
        close(naive.overdose_risk(), 0.25, 1e-9);
    }

    /// A tolerant patient established on morphine 3 mg/day, kept there by an infusion.
    fn morphine_3mg(condition: Condition) -> Patient {
        let mut p = Patient::at_steady_state(DrugId::Morphine, condition, 3e6);
        p.set_infusion_csf(3e6 / 24.0);
        p
    }

    #[test]
    fn steady_morphine_is_not_flagged_but_the_naive_patient_is_sim_071() {
        // By hand: V_csf = 15 × 1.5 / ln 2 = 32.461 mL; C_csf,ss = 3e6/24/15 =
        // 8333.33 ng/mL; CL_sys = ln 2 / 2.5 × 245,000 = 67,928.4 mL/h, C_sys,ss =
        // 3e6/24/67,928.4 = 1.8402 ng/mL. u = 8333.33/4600 + 1.8402/9.4 = 1.81159 +
        // 0.19577 = 2.00736. Tolerant: T = 1 + 2 × 2.00736 = 5.01472, v = u/T =
        // 0.40029, D = v/(1 + v) = 0.28586. Naive: T = 1, D = 2.00736/3.00736 = 0.66748.
        let mut p = morphine_3mg(Condition::pain());
        close(p.opioid_exposure(), 2.00736, 1e-4);
        close(p.opioid_tolerance().unwrap_or(0.0), 5.01472, 1e-4);
        close(p.overdose_risk(), 0.28586, 1e-4);
        // It stays there over a week of steady therapy.
        p.advance(24.0 * 7.0);
        close(p.overdose_risk(), 0.28586, 1e-4);
        assert!(!p.overdose_flagged());
        let naive = morphine_3mg(Condition::pain_opioid_naive());
        close(naive.opioid_tolerance().unwrap_or(0.0), 1.0, 0.0);
        close(naive.overdose_risk(), 0.66748, 1e-4);
        assert!(naive.overdose_flagged());
        // A drug without the respiration model has no tolerance factor.
        assert!(
            Patient::new(DrugId::Baclofen, Condition::spasticity())
                .opioid_tolerance()
                .is_none()
        );
    }

    #[test]
    fn access_port_injection_of_morphine_is_flagged_by_hand_sim_071() {
        // 20 mL × 10 mg/mL = 200 mg into the CSF of the tolerant 3 mg/day patient.
        // At t = 3 h, by hand (k = ln2/1.5 = 0.46210, k_e0 = ln2/3 = 0.23105,
        // k_sys = ln2/2.5 = 0.27726, 1/τ_tol = 1/168):
        //   C0 = 200e6 / 32.4606 = 6,161,308 ng/mL
        //   Ce  = 8333.3 + C0·k_e0/(k − k_e0)·(e^{−k_e0 t} − e^{−kt})
        //       = 8333.3 + C0 × 1 × (0.5 − 0.25) = 1,548,660 ng/mL
        //   A_sys(bolus) = 200e6·k/(k_sys − k)·(e^{−kt} − e^{−k_sys t})
        //       = 200e6 × (−2.5) × (0.25 − 0.43528) = 92.64e6 ng → 378.11 ng/mL,
        //     + 1.84 steady = 379.95 ng/mL
        //   tolerance average = 8333.3 + C0/168/(k − 1/168)·(e^{−t/168} − e^{−kt})
        //       = 67,210.9 ng/mL
        //   u = 1,548,660/4600 + 379.95/9.4 = 336.67 + 40.42 = 377.09
        //   T = 1 + 2 × (67,210.9/4600 + 67,210.9 × 15/67,928.4/9.4) = 33.380
        //   v = 11.297, D = 0.91868.
        let mut p = morphine_3mg(Condition::pain());
        p.dose_csf(200e6);
        p.advance(3.0);
        close(p.opioid_averages().0, 1_548_660.4, 1.0);
        close(p.systemic_ng_per_ml(), 379.953, 1e-2);
        close(p.opioid_averages().1, 67_210.9, 0.5);
        close(p.opioid_tolerance().unwrap_or(0.0), 33.380, 1e-3);
        close(p.overdose_risk(), 0.91868, 1e-4);
        assert!(p.overdose_flagged());
    }

    #[test]
    fn a_tenfold_wrong_concentration_is_flagged_within_hours_sim_071() {
        // The pump believes 2 mg/mL while the reservoir holds 20: ten times the dose,
        // 30 mg/day. Flagged within a day, while a doubled dose never is.
        let run = |daily: f64| {
            let mut p = morphine_3mg(Condition::pain());
            p.set_infusion_csf(daily / 24.0);
            let mut first = None;
            for h in 1..=72 {
                p.advance(1.0);
                if first.is_none() && p.overdose_flagged() {
                    first = Some(h);
                }
            }
            first
        };
        let tenfold = run(30e6);
        assert!(tenfold.is_some_and(|h| h <= 24), "{tenfold:?}");
        assert_eq!(run(6e6), None);
    }

    #[test]
    fn abrupt_morphine_stop_scores_opioid_withdrawal_by_hand_sim_070() {
        // Stop from steady state (C0 = 1, k = ln2/1.5 = 0.46210, τ 6 h and 72 h):
        //   fast(t) = e^{−t/6} + (1/6)(e^{−kt} − e^{−t/6})/(1/6 − k)
        //   base(t) = e^{−t/72} + (1/72)(e^{−kt} − e^{−t/72})/(1/72 − k)
        // t = 6: 0.54016 / 0.94662 = 0.57062 → (0.6 − 0.57062)/0.4 = 0.07345
        // t = 8: 0.39831 / 0.92180 = 0.43210 → 0.41974 (not flagged)
        // t = 12: 0.20948 / 0.87259 = 0.24007 → 0.89983 (flagged)
        let mut p = Patient::at_steady_state(DrugId::Morphine, Condition::pain(), 3e6);
        close(p.opioid_withdrawal_risk(), 0.0, 0.0);
        p.advance(6.0);
        close(p.opioid_withdrawal_risk(), 0.07345, 1e-4);
        p.advance(2.0);
        close(p.opioid_withdrawal_risk(), 0.41974, 1e-4);
        assert!(p.opioid_withdrawal_risk() < FLAG_AT);
        p.advance(4.0);
        close(p.opioid_withdrawal_risk(), 0.89983, 1e-4);
        // Baclofen's score is untouched; clonidine's is 0 for morphine.
        close(p.withdrawal_risk(), 0.0, 0.0);
        close(p.clonidine_withdrawal_risk(), 0.0, 0.0);
        // Hydromorphone has the same CSF kinetics: the same score.
        let mut h = Patient::at_steady_state(DrugId::Hydromorphone, Condition::pain(), 6e5);
        h.advance(12.0);
        close(h.opioid_withdrawal_risk(), 0.89983, 1e-4);
        // A halved dose is not flagged: the worst ratio is about 0.5 → ≤ 0.25.
        let mut half = morphine_3mg(Condition::pain());
        half.set_infusion_csf(1.5e6 / 24.0);
        let mut worst: f64 = 0.0;
        for _ in 0..5 * 24 {
            half.advance(1.0);
            worst = worst.max(half.opioid_withdrawal_risk());
        }
        assert!(worst < FLAG_AT, "{worst}");
    }

    #[test]
    fn abrupt_clonidine_stop_scores_rebound_hypertension_by_hand_sim_070() {
        // Stop from steady state (150 mcg/day; k = ln2/1.3 = 0.53319, k_sys = ln2/12 =
        // 0.057762, τ_base = 72 h). Normalised to the steady levels:
        //   C_sys(t)/C_sys,ss = e^{−k_s t} + k_s(e^{−kt} − e^{−k_s t})/(k_s − k)
        //   base(t)/C_csf,ss  = e^{−t/72} + (1/72)(e^{−kt} − e^{−t/72})/(1/72 − k)
        // and C_sys,ss = C_csf,ss × CL_csf/CL_sys, so r = the first over the second.
        // t = 18: 0.39649 / 0.79957 = 0.49588 → (0.6 − 0.49588)/0.4 = 0.2603
        // t = 24: 0.28039 / 0.73571 = 0.38111 → 0.5472 (flagged)
        // t = 36: 0.14018 / 0.62277 = 0.22509 → 0.9373
        let mut p = Patient::at_steady_state(DrugId::Clonidine, Condition::pain(), 150e3);
        close(p.clonidine_withdrawal_risk(), 0.0, 1e-12);
        p.advance(18.0);
        close(p.clonidine_withdrawal_risk(), 0.2603, 1e-3);
        assert!(p.clonidine_withdrawal_risk() < FLAG_AT);
        p.advance(6.0);
        close(p.clonidine_withdrawal_risk(), 0.5472, 1e-3);
        assert!(p.clonidine_withdrawal_risk() >= FLAG_AT);
        p.advance(12.0);
        close(p.clonidine_withdrawal_risk(), 0.9373, 1e-3);
        close(p.opioid_withdrawal_risk(), 0.0, 0.0);
        // Halving the dose is not flagged.
        let mut half = Patient::at_steady_state(DrugId::Clonidine, Condition::pain(), 150e3);
        half.set_infusion_csf(75e3 / 24.0);
        let mut worst: f64 = 0.0;
        for _ in 0..5 * 24 {
            half.advance(1.0);
            worst = worst.max(half.clonidine_withdrawal_risk());
        }
        assert!(worst < FLAG_AT, "{worst}");
        // Never established: no risk.
        let mut naive = Patient::new(DrugId::Clonidine, Condition::pain());
        naive.dose_csf(10.0);
        naive.advance(30.0);
        close(naive.clonidine_withdrawal_risk(), 0.0, 0.0);
    }

    #[test]
    fn risks_of_an_admixture_take_the_largest_sim_070() {
        let mut m = Patient::at_steady_state(DrugId::Morphine, Condition::pain(), 3e6);
        let mut c = Patient::at_steady_state(DrugId::Clonidine, Condition::pain(), 150e3);
        m.advance(24.0);
        c.advance(24.0);
        let r = Risks::of([&m, &c]);
        close(r.clonidine_withdrawal, c.clonidine_withdrawal_risk(), 0.0);
        close(r.opioid_withdrawal, 1.0, 0.0);
        close(r.withdrawal, 0.0, 0.0);
        close(r.opioid_tolerance, m.opioid_tolerance().unwrap_or(0.0), 0.0);
        assert!(Risks::of([&c]).opioid_tolerance.is_nan());
    }

    #[test]
    fn bolus_behaviour_is_event_driven_sim_013() {
        let mut r = rng(11);
        assert_eq!(
            BolusBehaviour::Never.next_press_after(&mut r, 5.0, 0.0),
            None
        );
        let every = BolusBehaviour::EveryMinute.next_press_after(&mut r, 5.0, 1.0);
        close(every.unwrap_or(f64::NAN), 5.0 + 1.0 / 60.0, 1e-12);
        let poor = BolusBehaviour::WhenPoor {
            threshold: 0.5,
            per_hour: 2.0,
        };
        assert_eq!(poor.next_press_after(&mut r, 0.0, 0.6), None);
        assert!(!poor.wants_to_press(0.5));
        assert!(poor.wants_to_press(0.49));
        // Mean wait 1/2 h.
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| poor.next_press_after(&mut r, 10.0, 0.1).unwrap_or(f64::NAN) - 10.0)
            .sum();
        close(total / f64::from(n), 0.5, 0.02);
        let lazy = BolusBehaviour::WhenPoor {
            threshold: 0.5,
            per_hour: 0.0,
        };
        assert_eq!(lazy.next_press_after(&mut r, 0.0, 0.0), None);
    }
}
