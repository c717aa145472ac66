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
                let (ok, count) = (
                    header_is_ok(response.header.as_ref()),
                    response.service_entries.len(),
                );
                let result = accepted(response.header.as_ref(), || {
                    response
                        .service_entries
                        .iter()
                        .cloned()
                        .map(service_info_from)
                        .collect::<Vec<_>>()
                });
                check(ok, &result);
                if let Ok(services) = result {
                    assert_eq!(services.len(), count);
                }
            }
        }
        1 => {
            if let Ok(response) = cam::GetVisibleCamerasResponse::decode(bytes) {
                let (ok, count) = (
                    header_is_ok(response.header.as_ref()),
                    response.streams.len(),
                );
                let result = accepted(response.header.as_ref(), || {
                    response
                        .streams
                        .iter()
                        .cloned()
                        .map(visible_camera_from)
                        .collect::<Vec<_>>()
                });
                check(ok, &result);
                if let Ok(cameras) = result {
                    assert_eq!(cameras.len(), count);
                }
            }
        }
        2 => {
            if let Ok(response) = cam::GetStreamParamsResponse::decode(bytes) {
                let ok = header_is_ok(response.header.as_ref());
                check(
                    ok,
                    &accepted(response.header.as_ref(), || {
                        stream_params_from(response.params)
                    }),
                );
            }
        }
        3 => {
            if let Ok(response) = cam::SetStreamParamsResponse::decode(bytes) {
                let ok = header_is_ok(response.header.as_ref());
                check(
                    ok,
                    &accepted(response.header.as_ref(), || {
                        stream_params_from(response.params)
                    }),
                );
            }
        }
        4 => {
            if let Ok(response) = cam::ListPtzResponse::decode(bytes) {
                let (ok, count) = (header_is_ok(response.header.as_ref()), response.ptzs.len());
                let result = accepted(response.header.as_ref(), || {
                    response
                        .ptzs
                        .iter()
                        .cloned()
                        .map(ptz_info_from)
                        .collect::<Vec<_>>()
                });
                check(ok, &result);
                if let Ok(heads) = result {
                    assert_eq!(heads.len(), count);
                    for head in heads {
                        check_limits(head.pan_limits_deg);
                        check_limits(head.tilt_limits_deg);
                        check_limits(head.zoom_limits);
                    }
                }
            }
        }
        5 => {
            if let Ok(response) = cam::GetPtzPositionResponse::decode(bytes) {
                let ok = header_is_ok(response.header.as_ref());
                let result = accepted(response.header.as_ref(), || {
                    ptz_pose_from("mech", response.position)
                });
                check(ok, &result);
                if let Ok(pose) = result {
                    assert!(!pose.name.is_empty());
                }
            }
        }
        6 => {
            if let Ok(response) = cam::SetPtzPositionResponse::decode(bytes) {
                let ok = header_is_ok(response.header.as_ref());
                let result = accepted(response.header.as_ref(), || {
                    ptz_pose_from("mech", response.position)
                });
                check(ok, &result);
                if let Ok(pose) = result {
                    assert!(!pose.name.is_empty());
                }
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
