//! A minimal firmware image around the therapy core, built for `thumbv7em-none-eabihf`
//! only to measure its footprint (flash: `.text` + `.rodata` + `.data`; RAM: `.data` +
//! `.bss` + the stack that holds the `Pump`).
//!
//! `_start` restores the core from two static slot buffers and runs the documented call
//! order for ever: wait for `poll_timeout()` on a fake timer register, `handle_timeout`,
//! drain `poll_action()` (persist into the slots, strokes to a fake motor register,
//! answered with `handle_stroke_done`), plus battery, magnet and (feature `commands`)
//! postcard-decoded radio commands, so that the linker keeps the whole core. Every
//! register is a volatile access to a made-up address: the image is never run.
#![no_std]
#![no_main]

use core::panic::PanicInfo;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use thecal_pump::battery::BatteryReading;
use thecal_pump::core::{Action, Pump, RECORD_CAPACITY};
use thecal_pump::persist::Slot;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::Instant;

/// Size of the core's state machine on this target, bytes (read it with `nm`/`readelf`
/// or from the `.rodata` of the ELF; also asserted at compile time below).
#[unsafe(no_mangle)]
#[used]
pub static PUMP_SIZE: usize = core::mem::size_of::<Pump>();
/// Alignment of `Pump` on this target.
#[unsafe(no_mangle)]
#[used]
pub static PUMP_ALIGN: usize = core::mem::align_of::<Pump>();

// Fake memory-mapped registers.
const TIMER_MS_LO: *const u32 = 0x4000_0000 as *const u32;
const TIMER_MS_HI: *const u32 = 0x4000_0004 as *const u32;
const MOTOR_GO: *mut u32 = 0x4000_0100 as *mut u32;
const MOTOR_DONE: *const u32 = 0x4000_0104 as *const u32;
const TONE: *mut u32 = 0x4000_0200 as *mut u32;
const LOG_OUT: *mut u32 = 0x4000_0300 as *mut u32;
const BATT_MV: *const u32 = 0x4000_0400 as *const u32;
const BATT_UJ: *const u32 = 0x4000_0404 as *const u32;
const MAGNET: *const u32 = 0x4000_0500 as *const u32;
const RADIO_LEN: *const u32 = 0x4000_0600 as *const u32;
const RADIO_RSP: *mut u32 = 0x4000_0604 as *mut u32;
const WFI_UNTIL: *mut u32 = 0x4000_0700 as *mut u32;

/// The two A/B record slots (in a real image: two flash or FRAM pages).
static mut SLOT_A: [u8; RECORD_CAPACITY] = [0; RECORD_CAPACITY];
static mut SLOT_B: [u8; RECORD_CAPACITY] = [0; RECORD_CAPACITY];
/// The radio's receive buffer (a postcard-encoded `(role, Command)`).
#[cfg(feature = "commands")]
static mut RADIO_RX: [u8; 512] = [0; 512];

fn now() -> Instant {
    // SAFETY: a made-up register, only ever read.
    let (lo, hi) = unsafe { (read_volatile(TIMER_MS_LO), read_volatile(TIMER_MS_HI)) };
    Instant::from_ms((u64::from(hi) << 32) | u64::from(lo))
}

/// Carries out every queued action in order.
fn drain(pump: &mut Pump) {
    loop {
        let mut stroke = false;
        match pump.poll_action() {
            None => break,
            Some(Action::Stroke) => stroke = true,
            Some(Action::Persist { slot, bytes }) => {
                let dst = match slot {
                    Slot::A => addr_of_mut!(SLOT_A),
                    Slot::B => addr_of_mut!(SLOT_B),
                };
                // SAFETY: single-threaded; the slots are only touched here and at start.
                let dst = unsafe { &mut *dst };
                let n = bytes.len().min(dst.len());
                dst[..n].copy_from_slice(&bytes[..n]);
            }
            Some(Action::Alarm(sound)) => {
                // SAFETY: a made-up register.
                unsafe { write_volatile(TONE, sound.kind as u32) }
            }
            Some(Action::Log(e) | Action::FaultLog(e)) => {
                // SAFETY: a made-up register.
                unsafe { write_volatile(LOG_OUT, e.seq) }
            }
        }
        if stroke {
            // SAFETY: made-up registers.
            let ok = unsafe {
                write_volatile(MOTOR_GO, 1);
                read_volatile(MOTOR_DONE) != 0
            };
            pump.handle_stroke_done(now(), ok);
        }
    }
}

#[cfg(feature = "commands")]
fn radio(pump: &mut Pump) {
    use thecal_pump::command::{Command, Response, Role};
    // SAFETY: made-up register; the buffer is only read here.
    let len = unsafe { read_volatile(RADIO_LEN) } as usize;
    if len == 0 {
        return;
    }
    let buf = unsafe { &*addr_of!(RADIO_RX) };
    let Some(frame) = buf.get(..len.min(buf.len())) else {
        return;
    };
    if let Ok((role, key_id, cmd)) = postcard::from_bytes::<(u8, u32, Command)>(frame) {
        let role = match role {
            0 => Role::Clinician,
            1 => Role::PatientRemote,
            _ => Role::Emergency,
        };
        let r = pump.handle_command(now(), role, key_id, &cmd);
        drain(pump);
        let code = match r {
            Response::Accepted => 0,
            Response::BolusAccepted { .. } => 1,
            Response::Status(s) => s.program_version,
            Response::Refused(r) => 0x100 | u32::from(r.code()),
        };
        // SAFETY: a made-up register.
        unsafe { write_volatile(RADIO_RSP, code) }
    }
    pump.handle_radio(now(), 20);
}

#[cfg(not(feature = "commands"))]
fn radio(_pump: &mut Pump) {}

/// The entry point: restore, then the call order of `thecal_pump::core` for ever.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let profile = HardwareProfile::synchromed_class(40);
    // SAFETY: single-threaded start-up; nothing else holds the slots.
    let (a, b) = unsafe { (&*addr_of!(SLOT_A), &*addr_of!(SLOT_B)) };
    let mut pump = Pump::restore(profile, a, b, now());
    drain(&mut pump);
    let mut magnet = false;
    loop {
        if let Some(t) = pump.poll_timeout() {
            // SAFETY: a made-up "sleep until" register.
            unsafe { write_volatile(WFI_UNTIL, t.ms() as u32) }
            if now() >= t {
                pump.handle_timeout(now());
                drain(&mut pump);
            }
        }
        // SAFETY: made-up registers.
        let (mv, uj, m) = unsafe {
            (
                read_volatile(BATT_MV),
                read_volatile(BATT_UJ),
                read_volatile(MAGNET) != 0,
            )
        };
        if mv != 0 {
            let reading = BatteryReading {
                remaining_uj: (uj != 0).then_some(u64::from(uj)),
                voltage_mv: mv as u16,
            };
            pump.handle_battery(now(), reading);
            drain(&mut pump);
        }
        if m != magnet {
            magnet = m;
            pump.handle_magnet(now(), m);
            drain(&mut pump);
        }
        radio(&mut pump);
    }
}

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
