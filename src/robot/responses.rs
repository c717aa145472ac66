//! What the robot's responses mean, once decoded: the header check every response passes and
//! the mapping of each response's content to the client's types. Pure functions of data the
//! robot sent (no I/O), used by [`super::RobotClient`] and by the fuzz targets.

use super::{AwbMode, PtzInfo, PtzPose, RobotError, ServiceInfo, StreamParams, VisibleCamera};
use crate::proto::bosdyn::api as pb;
use crate::proto::bosdyn::api::spot_cam as cam;

/// Access to the common response header of every Spot API response.
pub(crate) trait HasResponseHeader {
    fn response_header(&self) -> Option<&pb::ResponseHeader>;
}

macro_rules! has_response_header {
    ($($t:ty),* $(,)?) => {
        $(impl HasResponseHeader for $t {
            fn response_header(&self) -> Option<&pb::ResponseHeader> {
                self.header.as_ref()
            }
        })*
    };
}

has_response_header!(
    pb::GetAuthTokenResponse,
    pb::ListServiceEntriesResponse,
    pb::GetServiceEntryResponse,
    cam::ListScreensResponse,
    cam::GetScreenResponse,
    cam::SetScreenResponse,
    cam::GetVisibleCamerasResponse,
    cam::GetStreamParamsResponse,
    cam::SetStreamParamsResponse,
    cam::ListPtzResponse,
    cam::GetPtzPositionResponse,
    cam::SetPtzPositionResponse,
);

/// Checks `header.error.code == CODE_OK`, as the SDK's `common_header_errors` does.
pub fn check_header(
    rpc: &'static str,
    header: Option<&pb::ResponseHeader>,
) -> Result<(), RobotError> {
    use pb::common_error::Code;
    let Some(header) = header else {
        return Err(RobotError::HeaderError {
            rpc,
            code: "missing header".to_string(),
            message: "the response carried no ResponseHeader".to_string(),
        });
    };
    let (code, message) = match &header.error {
        Some(e) => (e.code, e.message.clone()),
        None => (Code::Unspecified as i32, String::new()),
    };
    match Code::try_from(code) {
        Ok(Code::Ok) => Ok(()),
        Ok(Code::InvalidRequest) => Err(RobotError::InvalidRequest { rpc, message }),
        Ok(Code::Unspecified) => Err(RobotError::HeaderError {
            rpc,
            code: "CODE_UNSPECIFIED".to_string(),
            message: format!("the robot left the header status unset {message}")
                .trim_end()
                .to_string(),
        }),
        Ok(other) => Err(RobotError::HeaderError {
            rpc,
            code: other.as_str_name().to_string(),
            message,
        }),
        Err(_) => Err(RobotError::HeaderError {
            rpc,
            code: format!("unknown code {code}"),
            message,
        }),
    }
}

fn limits(l: Option<&cam::ptz_description::Limits>) -> Option<(f32, f32)> {
    let l = l?;
    let (min, max) = (l.min?, l.max?);
    // spot_wrapper treats 0/0 as "unset"; so does the SDK's text output.
    if min == 0.0 && max == 0.0 {
        None
    } else {
        Some((min, max))
    }
}

pub fn service_info_from(e: pb::ServiceEntry) -> ServiceInfo {
    ServiceInfo {
        service_type: match e.service_type {
            Some(pb::service_entry::ServiceType::Type(t)) => t,
            None => String::new(),
        },
        name: e.name,
        authority: e.authority,
        user_token_required: e.user_token_required,
    }
}

pub fn visible_camera_from(s: cam::get_visible_cameras_response::Stream) -> VisibleCamera {
    let window = s.window.unwrap_or_default();
    let camera = s.camera.unwrap_or_default();
    let resolution_px = camera
        .resolution
        .filter(|r| r.x > 0.0 && r.y > 0.0)
        .map(|r| (r.x.round() as u32, r.y.round() as u32));
    VisibleCamera {
        name: camera.name,
        window_x_px: window.xoffset,
        window_y_px: window.yoffset,
        window_width_px: window.width,
        window_height_px: window.height,
        resolution_px,
    }
}

pub fn ptz_info_from(d: cam::PtzDescription) -> PtzInfo {
    PtzInfo {
        pan_limits_deg: limits(d.pan_limit.as_ref()),
        tilt_limits_deg: limits(d.tilt_limit.as_ref()),
        zoom_limits: limits(d.zoom_limit.as_ref()),
        name: d.name,
    }
}

pub fn stream_params_from(p: Option<cam::StreamParams>) -> StreamParams {
    let Some(p) = p else {
        return StreamParams::default();
    };
    StreamParams {
        target_bitrate_bps: p.targetbitrate,
        refresh_interval_frames: p.refreshinterval,
        idr_interval_frames: p.idrinterval,
        awb: p.awb.and_then(|a| AwbMode::try_from(a.awb).ok()),
    }
}

pub fn ptz_pose_from(name: &str, position: Option<cam::PtzPosition>) -> PtzPose {
    let position = position.unwrap_or_default();
    PtzPose {
        name: position
            .ptz
            .map(|d| d.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| name.to_string()),
        pan_deg: position.pan,
        tilt_deg: position.tilt,
        zoom: position.zoom,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_treat_zero_zero_as_unset() {
        let l = |min, max| cam::ptz_description::Limits { min, max };
        assert_eq!(limits(Some(&l(Some(0.0), Some(0.0)))), None);
        assert_eq!(limits(Some(&l(None, Some(3.0)))), None);
        assert_eq!(limits(Some(&l(Some(-1.0), Some(3.0)))), Some((-1.0, 3.0)));
        assert_eq!(limits(None), None);
    }
}
