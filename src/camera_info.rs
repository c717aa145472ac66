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
    /// The PTZ's zoom when the calibration was taken (written by this node's
    /// `~/set_camera_info`; other readers ignore the key). With it, K and P follow the zoom.
    #[serde(default)]
    pub ptz_zoom: Option<f64>,
}

/// The distortion models a calibration may use, with their number of coefficients.
pub const DISTORTION_MODELS: [(&str, usize); 3] = [
    ("plumb_bob", 5),
    ("rational_polynomial", 8),
    ("equidistant", 4),
];

impl Calibration {
    /// Whether this is a calibration a pinhole camera can use: a size, a K with positive focal
    /// lengths, a known distortion model with its number of coefficients, finite R and P.
    /// The error says what is wrong, for `~/set_camera_info`'s `status_message`.
    pub fn validate(&self) -> Result<(), String> {
        if self.image_width == 0 || self.image_height == 0 {
            return Err("width and height must not be 0".to_string());
        }
        let k = &self.camera_matrix.data;
        let all_finite = [
            k,
            &self.rectification_matrix.data,
            &self.projection_matrix.data,
        ]
        .iter()
        .all(|m| m.iter().all(|v| v.is_finite()))
            && self
                .distortion_coefficients
                .data
                .iter()
                .all(|v| v.is_finite());
        if !all_finite {
            return Err("K, D, R and P must be finite numbers".to_string());
        }
        if k.len() != 9 || k[0] <= 0.0 || k[4] <= 0.0 || k[8] != 1.0 {
            return Err("K must be [fx, s, cx, 0, fy, cy, 0, 0, 1] with fx, fy > 0".to_string());
        }
        let model = &self.distortion_model;
        let Some((_, coefficients)) = DISTORTION_MODELS.iter().find(|(name, _)| name == model)
        else {
            return Err(format!(
                "distortion_model {model:?} is not one of plumb_bob, rational_polynomial, equidistant"
            ));
        };
        if self.distortion_coefficients.data.len() != *coefficients {
            return Err(format!(
                "{model} needs {coefficients} distortion coefficients, got {}",
                self.distortion_coefficients.data.len()
            ));
        }
        if self.rectification_matrix.data.len() != 9 || self.projection_matrix.data.len() != 12 {
            return Err("R must have 9 values and P 12".to_string());
        }
        Ok(())
    }

    /// The calibration at another zoom: the focal lengths scale with the zoom (the principal
    /// point stays), as the lens model has it. Unchanged without a recorded zoom.
    pub fn at_zoom(&self, zoom: f64) -> Calibration {
        let mut scaled = self.clone();
        let Some(factor) = self
            .ptz_zoom
            .filter(|z| *z > 0.0 && zoom > 0.0)
            .map(|z| zoom / z)
        else {
            return scaled;
        };
        for i in [0, 1, 4] {
            scaled.camera_matrix.data[i] *= factor;
        }
        for i in [0, 1, 5] {
            scaled.projection_matrix.data[i] *= factor;
        }
        scaled
    }

    /// The calibration as `camera_calibration_parsers` YAML (what `camera_info_manager` writes).
    pub fn to_yaml(&self) -> String {
        let list = |data: &[f64]| {
            data.iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let matrix = |m: &Matrix| {
            format!(
                "\n  rows: {}\n  cols: {}\n  data: [{}]",
                m.rows,
                m.cols,
                list(&m.data)
            )
        };
        let mut yaml = format!(
            "image_width: {}\nimage_height: {}\ncamera_name: {}\ncamera_matrix:{}\ndistortion_model: {}\ndistortion_coefficients:{}\nrectification_matrix:{}\nprojection_matrix:{}\n",
            self.image_width,
            self.image_height,
            serde_json::to_string(&self.camera_name).unwrap_or_else(|_| "camera".to_string()),
            matrix(&self.camera_matrix),
            self.distortion_model,
            matrix(&self.distortion_coefficients),
            matrix(&self.rectification_matrix),
            matrix(&self.projection_matrix),
        );
        if let Some(zoom) = self.ptz_zoom {
            yaml.push_str(&format!("ptz_zoom: {zoom:?}\n"));
        }
        yaml
    }
}

/// The calibration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CameraInfoError {
    #[error("camera_info_url {url:?} must be a file:///absolute/path.yaml URL")]
    Url { url: String },
    /// Quotes its cause (not chained: printed once).
    #[error("cannot read the calibration {path}: {cause}; check camera_info_url")]
    Read { path: String, cause: std::io::Error },
    /// Quotes its cause (not chained: printed once).
    #[error(
        "cannot write the calibration {path}: {cause}; check that camera_info_url names a writable file"
    )]
    Write { path: String, cause: std::io::Error },
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

/// The file a `file:///absolute/path` URL names.
pub fn path_of(url: &str) -> Result<&str, CameraInfoError> {
    url.strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| CameraInfoError::Url {
            url: url.to_string(),
        })
}

/// Writes `calibration` to the file `url` names, whole or not at all: into a temporary file
/// beside it, then renamed over it (parent directories are created).
pub fn save(url: &str, calibration: &Calibration) -> Result<(), CameraInfoError> {
    let path = std::path::Path::new(path_of(url)?);
    let write = |path: &std::path::Path| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let written = std::fs::write(&temporary, calibration.to_yaml())
            .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
            .and_then(|()| std::fs::rename(&temporary, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    };
    write(path).map_err(|cause| CameraInfoError::Write {
        path: path.display().to_string(),
        cause,
    })
}

/// Loads the calibration a `file://` URL points at.
pub fn load(url: &str) -> Result<Calibration, CameraInfoError> {
    let path = path_of(url)?;
    let yaml = std::fs::read_to_string(path).map_err(|cause| CameraInfoError::Read {
        path: path.to_string(),
        cause,
    })?;
    parse(path, &yaml)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "image_width: 1280\nimage_height: 720\ncamera_name: spot_cam_ptz\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [900, 0, 640, 0, 900, 360, 0, 0, 1]\ndistortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, -0.2, 0, 0, 0]\nrectification_matrix:\n  rows: 3\n  cols: 3\n  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]\nprojection_matrix:\n  rows: 3\n  cols: 4\n  data: [900, 0, 640, 0, 0, 900, 360, 0, 0, 0, 1, 0]\n";

    #[test]
    fn a_saved_calibration_reads_back_and_follows_the_zoom() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/sub/cal.yaml", dir.path().display());
        let mut calibration = parse("x.yaml", YAML).unwrap();
        calibration.validate().unwrap();
        calibration.ptz_zoom = Some(2.0);
        save(&url, &calibration).unwrap();
        let back = load(&url).unwrap();
        assert_eq!(back, calibration);
        let zoomed = back.at_zoom(4.0);
        assert_eq!(zoomed.camera_matrix.data[0], 1800.0);
        assert_eq!(zoomed.camera_matrix.data[2], 640.0);
        assert_eq!(zoomed.projection_matrix.data[5], 1800.0);
        // Only the file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
        let mut bad = calibration.clone();
        bad.distortion_coefficients.data.pop();
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("5 distortion coefficients")
        );
        bad = calibration;
        bad.camera_matrix.data[0] = f64::NAN;
        assert!(bad.validate().is_err());
    }

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
