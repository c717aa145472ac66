//! Camera calibration files in the `camera_calibration_parsers` YAML format (what ROS's
//! `camera_calibration` writes and `camera_info_manager` reads), for `camera_info`.

use serde::Deserialize;

/// A row-major matrix as the YAML stores it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

/// One calibration, for one image size.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Calibration {
    pub image_width: u32,
    pub image_height: u32,
    #[serde(default)]
    pub camera_name: String,
    pub camera_matrix: Matrix,
    pub distortion_model: String,
    pub distortion_coefficients: Matrix,
    pub rectification_matrix: Matrix,
    pub projection_matrix: Matrix,
}

/// The calibration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CameraInfoError {
    #[error("camera_info_url {url:?} must be a file:///absolute/path.yaml URL")]
    Url { url: String },
    #[error("cannot read the calibration {path}: {source}; check camera_info_url")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the calibration {path} is not camera_calibration YAML: {reason}")]
    Parse { path: String, reason: String },
}

fn check(
    path: &str,
    name: &str,
    m: &Matrix,
    rows: usize,
    cols: usize,
) -> Result<(), CameraInfoError> {
    if m.rows == rows && m.cols == cols && m.data.len() == rows * cols {
        Ok(())
    } else {
        Err(CameraInfoError::Parse {
            path: path.to_string(),
            reason: format!("{name} must be {rows}x{cols} with {} values", rows * cols),
        })
    }
}

/// Parses a calibration from YAML text; `path` names it in errors.
pub fn parse(path: &str, yaml: &str) -> Result<Calibration, CameraInfoError> {
    let calibration: Calibration =
        serde_yaml_ng::from_str(yaml).map_err(|e| CameraInfoError::Parse {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
    check(path, "camera_matrix", &calibration.camera_matrix, 3, 3)?;
    check(
        path,
        "rectification_matrix",
        &calibration.rectification_matrix,
        3,
        3,
    )?;
    check(
        path,
        "projection_matrix",
        &calibration.projection_matrix,
        3,
        4,
    )?;
    let distortion = &calibration.distortion_coefficients;
    // rows and cols are the file's numbers: their product may not fit.
    if distortion.rows.checked_mul(distortion.cols) != Some(distortion.data.len()) {
        return Err(CameraInfoError::Parse {
            path: path.to_string(),
            reason: "distortion_coefficients: rows * cols differs from the number of values"
                .to_string(),
        });
    }
    Ok(calibration)
}

/// Loads the calibration a `file://` URL points at.
pub fn load(url: &str) -> Result<Calibration, CameraInfoError> {
    let path = url
        .strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| CameraInfoError::Url {
            url: url.to_string(),
        })?;
    let yaml = std::fs::read_to_string(path).map_err(|source| CameraInfoError::Read {
        path: path.to_string(),
        source,
    })?;
    parse(path, &yaml)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "image_width: 1280\nimage_height: 720\ncamera_name: spot_cam_ptz\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [900, 0, 640, 0, 900, 360, 0, 0, 1]\ndistortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, -0.2, 0, 0, 0]\nrectification_matrix:\n  rows: 3\n  cols: 3\n  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]\nprojection_matrix:\n  rows: 3\n  cols: 4\n  data: [900, 0, 640, 0, 0, 900, 360, 0, 0, 0, 1, 0]\n";

    #[test]
    fn parses_camera_calibration_yaml() {
        let c = parse("x.yaml", YAML).unwrap();
        assert_eq!((c.image_width, c.image_height), (1280, 720));
        assert_eq!(c.camera_matrix.data[2], 640.0);
        assert_eq!(c.distortion_coefficients.data.len(), 5);
        let broken = YAML.replace("cols: 4", "cols: 3");
        assert!(
            parse("x.yaml", &broken)
                .unwrap_err()
                .to_string()
                .contains("projection_matrix")
        );
        assert!(matches!(load("http://x"), Err(CameraInfoError::Url { .. })));
    }
}
