//! Windows: the power manager's suspend/resume callback, and the interrupt-time clocks.
//!
//! `PowerRegisterSuspendResumeNotification(DEVICE_NOTIFY_CALLBACK, …)` (Windows 8 and
//! later) calls back on a thread of the system's own, with no window or message loop
//! needed. It says `PBT_APMSUSPEND` before sleeping, `PBT_APMRESUMEAUTOMATIC` on every
//! resume and `PBT_APMRESUMESUSPEND` after it when someone is at the machine; both
//! resumes are a wake (the engine makes one check of wakes close together).
//!
//! The interrupt time counts 100 ns intervals since the machine started; the unbiased
//! one leaves out time spent asleep or hibernating. `QueryInterruptTime` needs Windows 10,
//! which Rust's Windows targets need anyway.

use std::ffi::c_void;

use tokio::sync::mpsc;
use windows_sys::Win32::Foundation::{ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::System::Power::{
    DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS, HPOWERNOTIFY, PowerRegisterSuspendResumeNotification,
    PowerUnregisterSuspendResumeNotification,
};
use windows_sys::Win32::System::WindowsProgramming::{
    QueryInterruptTime, QueryUnbiasedInterruptTime,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    DEVICE_NOTIFY_CALLBACK, PBT_APMRESUMEAUTOMATIC, PBT_APMRESUMESUSPEND,
};

use crate::{Clocks, PowerError, Sink, from_100ns};

/// A registration with the power manager; dropping it unregisters.
pub(crate) struct Registration {
    /// What `PowerRegisterSuspendResumeNotification` returned.
    handle: HPOWERNOTIFY,
    /// Where the callback puts wakes; closed once unregistered.
    sink: &'static Sink,
}

/// Registers the callback, with a sink around `tx` as its context.
#[allow(unsafe_code)]
pub(crate) fn register(tx: mpsc::UnboundedSender<()>) -> Result<Registration, PowerError> {
    let sink = Sink::leak(tx);
    // What the system is given lives as long as the process, like the sink: nothing it
    // may still read is ever freed (two pointers, once per subscription).
    let params: &'static DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS =
        Box::leak(Box::new(DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS {
            Callback: Some(on_power),
            Context: std::ptr::from_ref(sink).cast_mut().cast::<c_void>(),
        }));
    // With DEVICE_NOTIFY_CALLBACK the recipient is the parameters' address.
    let recipient: HANDLE = std::ptr::from_ref(params).cast_mut().cast::<c_void>();
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: `recipient` points to valid parameters that are never freed, whose
    // callback has the signature of PDEVICE_NOTIFY_CALLBACK_ROUTINE and whose context
    // is a `&'static Sink` (what `on_power` expects); `handle` is a valid place for the
    // registration handle.
    let status = unsafe {
        PowerRegisterSuspendResumeNotification(DEVICE_NOTIFY_CALLBACK, recipient, &mut handle)
    };
    if status != ERROR_SUCCESS {
        sink.close();
        let code = i32::try_from(status).unwrap_or(i32::MAX);
        let error = std::io::Error::from_raw_os_error(code);
        return Err(PowerError::Register(error));
    }
    Ok(Registration {
        handle: handle as HPOWERNOTIFY,
        sink,
    })
}

impl Drop for Registration {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: `handle` came from a successful registration, and this is the only
        // place that unregisters it, once. (It fails only for a handle that is not one.)
        let _ = unsafe { PowerUnregisterSuspendResumeNotification(self.handle) };
        self.sink.close();
    }
}

/// The power manager's callback: `context` is the registration's sink, `kind` a `PBT_*`
/// event, `setting` unused for suspend and resume.
///
/// # Safety
///
/// `context` must be null or point to a [`Sink`] that is never freed.
#[allow(unsafe_code)]
unsafe extern "system" fn on_power(
    context: *const c_void,
    kind: u32,
    _setting: *const c_void,
) -> u32 {
    if matches!(kind, PBT_APMRESUMEAUTOMATIC | PBT_APMRESUMESUSPEND) && !context.is_null() {
        // SAFETY: the context registered is a `&'static Sink` (see `register`), and
        // `Sink` is `Sync`: the system's thread may use it.
        let sink = unsafe { &*context.cast::<Sink>() };
        sink.wake();
    }
    ERROR_SUCCESS
}

/// The unbiased interrupt time (not counting sleep) beside the interrupt time (counting
/// it).
#[allow(unsafe_code)]
pub(crate) fn sleep_clocks() -> Option<Clocks> {
    let mut unbiased = 0u64;
    // SAFETY: the function writes one u64 through the valid pointer it is given.
    let ok = unsafe { QueryUnbiasedInterruptTime(&mut unbiased) };
    if ok == 0 {
        return None;
    }
    let mut interrupt = 0u64;
    // SAFETY: as above; this one cannot fail.
    unsafe { QueryInterruptTime(&mut interrupt) };
    Some(Clocks {
        awake: from_100ns(unbiased),
        passed: from_100ns(interrupt),
    })
}
