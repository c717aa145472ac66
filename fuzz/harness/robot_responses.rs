//! Harness of the `robot_responses` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): arbitrary bytes decoded as the robot's gRPC
//! responses (`prost::Message::decode`, as tonic does), then the robot client's header check
//! and mapping; and arbitrary gRPC statuses through its error mapping.
//!
//! Input: a selector byte, then the message bytes (for a status: the code byte, then the
//! message text).
//!
//! Properties: a response is accepted exactly when its header says `CODE_OK`; the mapping
//! keeps one entry per listed service, camera and PTZ head; a PTZ limit is never the 0/0
//! "unset" pair; every error has a message.
#![allow(dead_code)]

use std::time::Duration;

use prost::Message;
use spot_ptz_stream::proto::bosdyn::api as pb;
use spot_ptz_stream::proto::bosdyn::api::spot_cam as cam;
use spot_ptz_stream::robot::responses::{
    check_header, ptz_info_from, ptz_pose_from, service_info_from, stream_params_from,
    visible_camera_from,
};
use spot_ptz_stream::robot::{RobotError, fuzzing};

/// What the client does with a response: the header check, then the mapping.
fn accepted<T>(
    header: Option<&pb::ResponseHeader>,
    map: impl FnOnce() -> T,
) -> Result<T, RobotError> {
    check_header("Fuzz/Rpc", header).map(|()| map())
}

/// The kinds of input, by selector byte (modulo their number).
pub const KINDS: [&str; 8] = [
    "ListServiceEntries",
    "GetVisibleCameras",
    "GetStreamParams",
    "SetStreamParams",
    "ListPtz",
    "GetPtzPosition",
    "SetPtzPosition",
    "status",
];

fn header_is_ok(header: Option<&pb::ResponseHeader>) -> bool {
    header
        .and_then(|h| h.error.as_ref())
        .is_some_and(|e| e.code == pb::common_error::Code::Ok as i32)
}

fn check<T>(header_ok: bool, result: &Result<T, RobotError>) {
    assert_eq!(result.is_ok(), header_ok);
    if let Err(error) = result {
        assert!(!error.to_string().is_empty());
    }
}

/// A response through the client: accepted exactly when its header is OK. The mapped value
/// (none when refused).
fn mapped<U>(header: Option<&pb::ResponseHeader>, map: impl FnOnce() -> U) -> Option<U> {
    let result = accepted(header, map);
    check(header_is_ok(header), &result);
    result.ok()
}

/// A list response through the client: accepted exactly when its header is OK, then one
/// entry per listed item. The entries (none when refused).
fn mapped_list<T: Clone, U>(
    header: Option<&pb::ResponseHeader>,
    items: &[T],
    map: fn(T) -> U,
) -> Vec<U> {
    let result = accepted(header, || {
        items.iter().cloned().map(map).collect::<Vec<_>>()
    });
    check(header_is_ok(header), &result);
    let mapped = result.unwrap_or_default();
    if header_is_ok(header) {
        assert_eq!(mapped.len(), items.len());
    }
    mapped
}

fn check_limits(limits: Option<(f32, f32)>) {
    assert_ne!(limits, Some((0.0, 0.0)));
}

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match usize::from(selector) % KINDS.len() {
        0 => {
            if let Ok(response) = pb::ListServiceEntriesResponse::decode(bytes) {
                let header = response.header.as_ref();
                mapped_list(header, &response.service_entries, service_info_from);
            }
        }
        1 => {
            if let Ok(response) = cam::GetVisibleCamerasResponse::decode(bytes) {
                mapped_list(
                    response.header.as_ref(),
                    &response.streams,
                    visible_camera_from,
                );
            }
        }
        2 => {
            if let Ok(response) = cam::GetStreamParamsResponse::decode(bytes) {
                mapped(response.header.as_ref(), || {
                    stream_params_from(response.params)
                });
            }
        }
        3 => {
            if let Ok(response) = cam::SetStreamParamsResponse::decode(bytes) {
                mapped(response.header.as_ref(), || {
                    stream_params_from(response.params)
                });
            }
        }
        4 => {
            if let Ok(response) = cam::ListPtzResponse::decode(bytes) {
                for head in mapped_list(response.header.as_ref(), &response.ptzs, ptz_info_from) {
                    check_limits(head.pan_limits_deg);
                    check_limits(head.tilt_limits_deg);
                    check_limits(head.zoom_limits);
                }
            }
        }
        5 => {
            if let Ok(response) = cam::GetPtzPositionResponse::decode(bytes) {
                let pose = mapped(response.header.as_ref(), || {
                    ptz_pose_from("mech", response.position)
                });
                assert!(pose.is_none_or(|p| !p.name.is_empty()));
            }
        }
        6 => {
            if let Ok(response) = cam::SetPtzPositionResponse::decode(bytes) {
                let pose = mapped(response.header.as_ref(), || {
                    ptz_pose_from("mech", response.position)
                });
                assert!(pose.is_none_or(|p| !p.name.is_empty()));
            }
        }
        _ => {
            let Some((&code, message)) = bytes.split_first() else {
                return;
            };
            let code = tonic::Code::from(i32::from(code) % 20);
            let status = tonic::Status::new(code, String::from_utf8_lossy(message));
            let error = fuzzing::status_error(&status, Duration::from_secs(1));
            assert!(!error.to_string().is_empty());
            let _ = (error.is_retryable(), error.is_auth_rejection());
        }
    }
}
