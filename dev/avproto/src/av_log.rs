//! libav* logging: a quiet default and an optional bridge into `tracing`.
//!
//! libav logs through one process-wide callback. Without any call here it prints to stderr at
//! `AV_LOG_INFO`, which for a lossy H.264 stream means lines such as "concealing 1620 DC, 1620
//! AC, 1620 MV errors in P frame" per damaged frame, and x264 prints its statistics when an
//! encoder closes. Call [`set_level`] (cheap) or [`route_to_tracing`] once at start-up.

use std::ffi::{CStr, c_char, c_int, c_void};

use ffmpeg_next::ffi;

/// Severity threshold for libav messages (maps to `AV_LOG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AvLogLevel {
    Quiet,
    Error,
    Warning,
    Info,
    Debug,
}

impl AvLogLevel {
    fn to_av(self) -> c_int {
        match self {
            AvLogLevel::Quiet => ffi::AV_LOG_QUIET,
            AvLogLevel::Error => ffi::AV_LOG_ERROR,
            AvLogLevel::Warning => ffi::AV_LOG_WARNING,
            AvLogLevel::Info => ffi::AV_LOG_INFO,
            AvLogLevel::Debug => ffi::AV_LOG_DEBUG,
        }
    }
}

/// Sets libav's global log threshold; messages above it are dropped before formatting, both by
/// the default stderr printer and by the tracing bridge.
pub fn set_level(level: AvLogLevel) {
    // SAFETY: av_log_set_level only stores an int.
    unsafe { ffi::av_log_set_level(level.to_av()) }
}

#[cfg(target_arch = "x86_64")]
type VaList = *mut ffi::__va_list_tag;
#[cfg(not(target_arch = "x86_64"))]
type VaList = ffi::va_list;

/// Sends libav messages up to `level` to `tracing` (target `libav`) instead of stderr.
///
/// Mapping (libav → tracing): panic/fatal → error, error → warn, warning → info,
/// info → debug, verbose/debug → trace. libav "errors" are routine on a lossy link (every
/// damaged slice logs one), so they are not tracing errors. The callback may run on any libav
/// thread; partial lines (libav sometimes logs one line in several calls) become separate events.
pub fn route_to_tracing(level: AvLogLevel) {
    set_level(level);
    // SAFETY: the callback is a plain `extern "C"` function valid for the whole program.
    unsafe { ffi::av_log_set_callback(Some(log_callback)) }
}

/// Restores libav's own stderr printer.
pub fn route_to_stderr() {
    // SAFETY: av_log_default_callback is libav's own printer.
    unsafe { ffi::av_log_set_callback(Some(ffi::av_log_default_callback)) }
}

unsafe extern "C" fn log_callback(avcl: *mut c_void, level: c_int, fmt: *const c_char, vl: VaList) {
    // SAFETY (whole body): libav guarantees fmt/vl form a valid printf call for this message;
    // av_log_format_line2 writes at most line.len() bytes including the terminating NUL.
    unsafe {
        if level > ffi::av_log_get_level() {
            return;
        }
        let mut line = [0 as c_char; 1024];
        let mut print_prefix: c_int = 1;
        let n = ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            line.as_mut_ptr(),
            line.len() as c_int,
            &mut print_prefix,
        );
        if n < 0 {
            return;
        }
        let text = CStr::from_ptr(line.as_ptr()).to_string_lossy();
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if level <= ffi::AV_LOG_FATAL {
            tracing::error!(target: "libav", "{text}");
        } else if level <= ffi::AV_LOG_ERROR {
            tracing::warn!(target: "libav", "{text}");
        } else if level <= ffi::AV_LOG_WARNING {
            tracing::info!(target: "libav", "{text}");
        } else if level <= ffi::AV_LOG_INFO {
            tracing::debug!(target: "libav", "{text}");
        } else {
            tracing::trace!(target: "libav", "{text}");
        }
    }
}
