//! The therapy core on a Cortex-M4: a firmware image for QEMU's `mps2-an386` board.
//!
//! It runs the scripted stream of [`script`] (five simulated days of therapy with
//! refills, boluses, a power cut and a restart from the journal), prints the report over
//! semihosting, then its footprint: the static RAM (`.data` + `.bss` + `.uninit`, the
//! `Pump` among them), the stack's high-water mark (the stack is painted at start and
//! read back at the end), and flash (`.text` + `.rodata`). The host test
//! `crates/pump/tests/firmware_stream.rs` runs the same stream on x86-64 and compares.
//!
//! ```text
//! cd firmware-size && cargo run --release     # needs qemu-system-arm
//! ```
//!
//! The `Pump` lives in a static, placed once (`Pump::place`) and restored in place
//! (`Pump::restore_into`) at each power-on; the journal's NOR flash is the `.nor` region
//! (an external memory-mapped QSPI NOR, not MCU RAM).
#![no_std]
#![no_main]

mod script;

use core::fmt::Write;
use core::mem::MaybeUninit;
use core::panic::PanicInfo;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use thecal_pump::core::Pump;
use thecal_rx::Instant;

/// The journal's NOR flash (external, memory-mapped).
#[unsafe(link_section = ".nor")]
static mut NOR: MaybeUninit<script::Flash> = MaybeUninit::uninit();

/// The core's state machine, placed once and restored in place at each power-on.
static mut PUMP: MaybeUninit<Pump> = MaybeUninit::uninit();

/// The word the free stack is painted with.
const PAINT: u32 = 0xC0FF_EE11;

unsafe extern "C" {
    static __stext: u8;
    static __etext: u8;
    static __srodata: u8;
    static __erodata: u8;
    static __sdata: u8;
    static __sheap: u8;
    static _stack_start: u8;
}

fn addr(p: *const u8) -> usize {
    p as usize
}

/// Paints the free stack from the end of the statics up to a little below the current
/// stack pointer.
fn paint_stack() {
    let bottom = addr(addr_of!(__sheap));
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = (bottom + 3) & !3;
    while p + 64 < sp {
        // SAFETY: free stack between the statics and this frame, word-aligned.
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The deepest the stack ever reached, bytes below its top.
fn stack_high_water() -> usize {
    let bottom = (addr(addr_of!(__sheap)) + 3) & !3;
    let top = addr(addr_of!(_stack_start));
    let mut p = bottom;
    // SAFETY: reads of RAM between the statics and the stack's top.
    while p < top && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

/// Places the `Pump` in its static ([`Pump::place`]: built straight into it, not in a
/// temporary copied through the stack). Not inlined, and reached through an opaque
/// pointer, as measured.
#[inline(never)]
fn place(slot: &mut MaybeUninit<Pump>) {
    Pump::place(slot, script::profile());
}

#[entry]
fn main() -> ! {
    paint_stack();
    let mut out = hio::hstdout().unwrap_or_else(|_| debug_exit(false));
    let _ = writeln!(out, "boot");
    // SAFETY: single-threaded; the flash region is zeroed once (a valid `NorFlash`: only
    // integers) and then only reached through this one reference.
    let flash = unsafe {
        core::ptr::write_bytes(addr_of_mut!(NOR), 0, 1);
        (*addr_of_mut!(NOR)).assume_init_mut()
    };
    // SAFETY: single-threaded; the static is initialised here, once, before any use.
    place(unsafe { &mut *core::hint::black_box(addr_of_mut!(PUMP)) });
    let result = script::run(flash, &mut out, |mem, now: Instant| {
        // SAFETY: single-threaded; initialised above; the previous power-on's reference
        // is no longer used when the next power-on restores into the same place.
        let pump = unsafe { (*addr_of_mut!(PUMP)).assume_init_mut() };
        pump.restore_into(script::profile(), mem, now);
        pump
    });
    let stack = stack_high_water();
    let statics = addr(addr_of!(__sheap)) - addr(addr_of!(__sdata));
    let text = addr(addr_of!(__etext)) - addr(addr_of!(__stext));
    let rodata = addr(addr_of!(__erodata)) - addr(addr_of!(__srodata));
    let _ = writeln!(
        out,
        "ram_static {statics}\nstack_high_water {stack}\nram_total {}\nflash_text {text}\nflash_rodata {rodata}\nflash_total {}\npump_size {}\nnor_size {}",
        statics + stack,
        text + rodata,
        core::mem::size_of::<Pump>(),
        core::mem::size_of::<script::Flash>(),
    );
    debug_exit(result.is_ok())
}

fn debug_exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "hard fault");
    }
    debug_exit(false)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "panic: {info}");
    }
    debug_exit(false)
}
