//! The catheter (SIM-012): where the fluid the pump moves actually goes.
//!
//! Fluid transport (dead volume, what arrives first) is not modelled here: the engine
//! reuses [`thecal_pump::fluid::FluidPath`] for the true catheter contents. This model
//! only splits each volume the mechanism moves into three fractions ([`Routing`]):
//!
//! - **blocked**: cannot pass an occlusion (a kink, a fibrous sheath, a granuloma at the
//!   tip). It does not move at all: a peristaltic roller or a valve pulse works against
//!   the blockage and the fluid stays in the reservoir; a gas pump's flow falls.
//! - **to tissue**: passes the pump but leaves through a leak (a crack, a loose
//!   connector) into the tissue, or everything, when the catheter is disconnected.
//! - **to CSF**: reaches the intrathecal space.
//!
//! **What the engine does with a stroke of true volume `v`:** take `v × (1 − blocked)`
//! from the true reservoir and push it through the true `FluidPath`; split what leaves
//! the tip in proportion `to_csf : to_tissue` ([`Routing::csf_share_of_moved`]) and
//! give the masses to [`super::patient::Patient::dose_csf`] and
//! [`super::patient::Patient::dose_systemic`]. The core is told the stroke went well:
//! it **does not know** (under-delivery without the pump knowing; only refill
//! reconciliation can reveal it, DOMAIN.md §5).
//!
//! Occlusion and leak combine as: blocked = 1 − (1 − occlusion)(1 − granuloma block);
//! of what moves, `leak` goes to tissue (a leak upstream of a partial occlusion is
//! modelled the same as downstream: a simplification, assumption).

/// A granuloma (inflammatory mass) growing at the catheter tip.
///
/// Linked to high-concentration opioids (≥ 20–25 mg/mL): 8.7 % with hydromorphone,
/// diagnosed at a mean of 35 months (DOMAIN.md §4). Growth is **slow**, over months;
/// scenarios may compress it to hours or days to exercise the pump's and clinic's
/// response. The block grows linearly from 0 at `start_h` to `grow_to` at
/// `start_h + over_h`, then stays (assumption: no growth curve is documented).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Granuloma {
    /// When it starts to obstruct, hours since the start of the run.
    pub start_h: f64,
    /// The fraction of flow it finally blocks, 0..1.
    pub grow_to: f64,
    /// How long it takes to get there, hours (0: at once).
    pub over_h: f64,
}

/// Mean time to a granuloma diagnosis with high-concentration opioids, hours: 35
/// months of 30.44 days (DOMAIN.md §4, mean 35 months).
pub const GRANULOMA_MEAN_ONSET_H: f64 = 35.0 * 30.44 * 24.0;

impl Granuloma {
    /// The fraction of flow it blocks at `t_h`.
    pub fn block_at(&self, t_h: f64) -> f64 {
        let target = self.grow_to.clamp(0.0, 1.0);
        if t_h <= self.start_h {
            0.0
        } else if self.over_h <= 0.0 || t_h >= self.start_h + self.over_h {
            target
        } else {
            target * (t_h - self.start_h) / self.over_h
        }
    }
}

/// Where a moved volume goes; the three fractions sum to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routing {
    /// Reaches the CSF.
    pub to_csf: f64,
    /// Leaves into the tissue (leak, disconnection).
    pub to_tissue: f64,
    /// Does not move (occlusion): stays in the reservoir.
    pub blocked: f64,
}

impl Routing {
    /// Everything reaches the CSF.
    pub const ALL_TO_CSF: Routing = Routing {
        to_csf: 1.0,
        to_tissue: 0.0,
        blocked: 0.0,
    };

    /// The fraction that moves out of the pump: `to_csf + to_tissue`.
    pub fn moved(&self) -> f64 {
        self.to_csf + self.to_tissue
    }

    /// Of what moves, the share that reaches the CSF (1 when nothing moves, so that a
    /// caller multiplying by zero moved volume gets zero either way).
    pub fn csf_share_of_moved(&self) -> f64 {
        let moved = self.moved();
        if moved > 0.0 {
            self.to_csf / moved
        } else {
            1.0
        }
    }
}

/// The catheter's state. All fractions are clamped to 0..1 when used.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Catheter {
    /// Fixed occlusion (kink, sheath): fraction of flow that cannot pass.
    pub occlusion: f64,
    /// A growing granuloma at the tip, if any.
    pub granuloma: Option<Granuloma>,
    /// Fraction of the moving fluid that leaks into the tissue.
    pub leak: f64,
    /// Disconnected from the pump or pulled out of the intrathecal space: everything
    /// that moves goes to the tissue.
    pub disconnected: bool,
}

impl Catheter {
    /// A sound catheter: everything to the CSF.
    pub fn sound() -> Self {
        Catheter::default()
    }

    /// Whether [`Catheter::routing`] blocks exactly nothing at any time: no occlusion
    /// (zero or below, which the routing clamps to zero), no granuloma, connected.
    /// (A leak moves fluid to the tissue; it blocks nothing.)
    #[inline]
    pub fn blocks_nothing(&self) -> bool {
        self.occlusion <= 0.0 && self.granuloma.is_none() && !self.disconnected
    }

    /// The routing at `t_h` hours since the start of the run.
    pub fn routing(&self, t_h: f64) -> Routing {
        let occl = self.occlusion.clamp(0.0, 1.0);
        let gran = self.granuloma.map_or(0.0, |g| g.block_at(t_h));
        let passes = (1.0 - occl) * (1.0 - gran);
        let blocked = 1.0 - passes;
        if self.disconnected {
            // A disconnected catheter is open at the pump: nothing holds the fluid back
            // but an occlusion of the pump's own path, which the engine models as
            // `occlusion`; a tip granuloma no longer matters.
            let passes = 1.0 - occl;
            return Routing {
                to_csf: 0.0,
                to_tissue: passes,
                blocked: 1.0 - passes,
            };
        }
        let leak = self.leak.clamp(0.0, 1.0);
        Routing {
            to_csf: passes * (1.0 - leak),
            to_tissue: passes * leak,
            blocked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::close;

    fn sums_to_one(r: Routing) {
        close(r.to_csf + r.to_tissue + r.blocked, 1.0, 1e-12);
    }

    #[test]
    fn blocks_nothing_exactly_when_the_routing_blocks_nothing_sim_077() {
        let sound = Catheter::sound();
        let cases = [
            (sound, true),
            (
                Catheter {
                    occlusion: -0.5,
                    ..sound
                },
                true,
            ),
            (Catheter { leak: 0.3, ..sound }, true),
            (
                Catheter {
                    occlusion: 1e-9,
                    ..sound
                },
                false,
            ),
            (
                Catheter {
                    occlusion: f64::NAN,
                    ..sound
                },
                false,
            ),
            (
                Catheter {
                    disconnected: true,
                    ..sound
                },
                false,
            ),
            (
                Catheter {
                    granuloma: Some(Granuloma {
                        start_h: 1e9,
                        grow_to: 0.5,
                        over_h: 1.0,
                    }),
                    ..sound
                },
                false,
            ),
        ];
        for (c, nothing) in cases {
            assert_eq!(c.blocks_nothing(), nothing, "{c:?}");
            if nothing {
                // The routing's own answer, at any time: nothing blocked, bit for bit.
                for t in [0.0, 1.0, 1e6] {
                    assert_eq!(c.routing(t).blocked.to_bits(), 0.0f64.to_bits(), "{c:?}");
                }
            }
        }
    }

    #[test]
    fn sound_catheter_delivers_everything_sim_012() {
        let r = Catheter::sound().routing(1e6);
        assert_eq!(r, Routing::ALL_TO_CSF);
        close(r.moved(), 1.0, 0.0);
        close(r.csf_share_of_moved(), 1.0, 0.0);
    }

    #[test]
    fn occlusion_and_leak_combine_sim_012() {
        let c = Catheter {
            occlusion: 0.2,
            leak: 0.25,
            ..Catheter::default()
        };
        // 80 % passes; a quarter of that leaks: CSF 0.6, tissue 0.2, blocked 0.2.
        let r = c.routing(0.0);
        close(r.to_csf, 0.6, 1e-12);
        close(r.to_tissue, 0.2, 1e-12);
        close(r.blocked, 0.2, 1e-12);
        close(r.csf_share_of_moved(), 0.75, 1e-12);
        sums_to_one(r);
        // Out-of-range inputs are clamped.
        let wild = Catheter {
            occlusion: 1.5,
            leak: -1.0,
            ..Catheter::default()
        };
        let r = wild.routing(0.0);
        close(r.blocked, 1.0, 0.0);
        close(r.moved(), 0.0, 0.0);
        close(r.csf_share_of_moved(), 1.0, 0.0);
    }

    #[test]
    fn granuloma_grows_linearly_then_stays_sim_012() {
        let c = Catheter {
            occlusion: 0.5,
            granuloma: Some(Granuloma {
                start_h: 100.0,
                grow_to: 0.8,
                over_h: 200.0,
            }),
            ..Catheter::default()
        };
        close(c.routing(50.0).blocked, 0.5, 1e-12);
        // Half-way: granuloma blocks 0.4; passes 0.5 × 0.6 = 0.3.
        let r = c.routing(200.0);
        close(r.to_csf, 0.3, 1e-12);
        close(r.blocked, 0.7, 1e-12);
        sums_to_one(r);
        // Fully grown: passes 0.5 × 0.2 = 0.1, forever after.
        close(c.routing(300.0).to_csf, 0.1, 1e-12);
        close(c.routing(1e7).to_csf, 0.1, 1e-12);
        // Instant growth.
        let g = Granuloma {
            start_h: 1.0,
            grow_to: 1.0,
            over_h: 0.0,
        };
        close(g.block_at(1.0), 0.0, 0.0);
        close(g.block_at(1.000_001), 1.0, 0.0);
        // The clinical mean onset: 35 months ≈ 25,570 h.
        close(GRANULOMA_MEAN_ONSET_H, 25_569.6, 1e-6);
    }

    #[test]
    fn disconnected_catheter_sends_everything_to_tissue_sim_012() {
        let c = Catheter {
            disconnected: true,
            leak: 0.1,
            granuloma: Some(Granuloma {
                start_h: 0.0,
                grow_to: 1.0,
                over_h: 0.0,
            }),
            ..Catheter::default()
        };
        let r = c.routing(10.0);
        close(r.to_csf, 0.0, 0.0);
        close(r.to_tissue, 1.0, 0.0);
        close(r.blocked, 0.0, 0.0);
        close(r.csf_share_of_moved(), 0.0, 0.0);
        let kinked = Catheter {
            occlusion: 0.3,
            ..c
        };
        let r = kinked.routing(10.0);
        close(r.to_tissue, 0.7, 1e-12);
        sums_to_one(r);
    }
}
