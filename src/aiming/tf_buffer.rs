//! A small transform buffer: the edges of the TF tree (`/tf` and `/tf_static`, and the node's
//! own frames) with a few seconds of history, looked up at a stamp.
//!
//! Why our own and not a TF crate: the node needs lookups at a detection's stamp through a
//! handful of edges (a body camera → body → the PTZ base), must receive `/tf_static` latched
//! (transient local; `tf_r2r` subscribes volatile and misses it, and sleeps after every
//! message), and inserts its own frames without a round trip through DDS. This is that and no
//! more: no waiting for transforms (a lookup that cannot be answered now is an error, and the
//! detection is dropped with a warning), interpolation between samples (linear translation,
//! spherical rotation), and stamps as durations since the epoch (time is passed in).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use nalgebra::Isometry3;

/// History kept per dynamic edge.
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(10);
/// A lookup this close outside an edge's samples uses the nearest one.
const EXTRAPOLATION_LIMIT: Duration = Duration::from_millis(500);

/// A transform could not be looked up.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TfError {
    #[error("frame {0:?} is not in TF (nobody publishes it)")]
    UnknownFrame(String),
    #[error("frames {from:?} and {to:?} are not connected in TF")]
    NotConnected { from: String, to: String },
    #[error(
        "the transform {parent:?} → {child:?} is not known at the requested time ({lag_secs:.2} s from its nearest sample)"
    )]
    NoDataAtTime {
        parent: String,
        child: String,
        lag_secs: f64,
    },
}

#[derive(Debug)]
struct Edge {
    parent: String,
    is_static: bool,
    /// Oldest first.
    samples: VecDeque<(Duration, Isometry3<f64>)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct TfBuffer {
    edges: HashMap<String, Edge>,
    history: Duration,
}

impl Default for TfBuffer {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

impl TfBuffer {
    pub fn new(history: Duration) -> Self {
        Self {
            edges: HashMap::new(),
            history,
        }
    }

    /// Adds `parent_T_child` at `stamp`. A static edge keeps only its newest value.
    pub fn insert(
        &mut self,
        parent: &str,
        child: &str,
        stamp: Duration,
        transform: Isometry3<f64>,
        is_static: bool,
    ) {
        let edge = self.edges.entry(child.to_string()).or_insert_with(|| Edge {
            parent: parent.to_string(),
            is_static,
            samples: VecDeque::new(),
        });
        if edge.parent != parent || edge.is_static != is_static || is_static {
            edge.parent = parent.to_string();
            edge.is_static = is_static;
            edge.samples.clear();
        }
        // Keep the samples ordered; a late one goes in its place.
        let at = edge.samples.partition_point(|(s, _)| *s <= stamp);
        edge.samples.insert(at, (stamp, transform));
        if let Some(&(newest, _)) = edge.samples.back() {
            while edge.samples.len() > 2
                && edge
                    .samples
                    .front()
                    .is_some_and(|(s, _)| newest.saturating_sub(*s) > self.history)
            {
                edge.samples.pop_front();
            }
        }
    }

    /// `target_T_source` at `stamp` (`Duration::ZERO`: the newest of every edge).
    pub fn lookup(
        &self,
        target: &str,
        source: &str,
        stamp: Duration,
    ) -> Result<Isometry3<f64>, TfError> {
        let source_chain = self.chain_to_root(source, stamp)?;
        let target_chain = self.chain_to_root(target, stamp)?;
        // Each chain: (frame, root_T_frame) from the frame up to its root.
        let (root_source, root_t_source) = source_chain
            .last()
            .cloned()
            .unwrap_or_else(|| (source.to_string(), Isometry3::identity()));
        let (root_target, root_t_target) = target_chain
            .last()
            .cloned()
            .unwrap_or_else(|| (target.to_string(), Isometry3::identity()));
        if root_source != root_target {
            return Err(TfError::NotConnected {
                from: source.to_string(),
                to: target.to_string(),
            });
        }
        Ok(root_t_target.inverse() * root_t_source)
    }

    /// Whether anything publishes `frame` (as a child or a parent).
    pub fn knows(&self, frame: &str) -> bool {
        self.edges.contains_key(frame) || self.edges.values().any(|e| e.parent == frame)
    }

    /// `[(frame, root_T_frame)]`: the frame itself first (identity towards itself is implied),
    /// then its ancestors; the last entry is the root with the transform from the root to the
    /// frame.
    fn chain_to_root(
        &self,
        frame: &str,
        stamp: Duration,
    ) -> Result<Vec<(String, Isometry3<f64>)>, TfError> {
        if !self.knows(frame) {
            return Err(TfError::UnknownFrame(frame.to_string()));
        }
        // ancestor_T_frame, accumulated while walking up.
        let mut ancestor_t_frame = Isometry3::identity();
        let mut chain = vec![(frame.to_string(), ancestor_t_frame)];
        let mut current = frame.to_string();
        while let Some(edge) = self.edges.get(&current) {
            let parent_t_child = sample_at(edge, &current, stamp)?;
            ancestor_t_frame = parent_t_child * ancestor_t_frame;
            current = edge.parent.clone();
            chain.push((current.clone(), ancestor_t_frame));
            if chain.len() > 64 {
                // A loop in the tree: treat as not connected.
                return Err(TfError::NotConnected {
                    from: frame.to_string(),
                    to: current,
                });
            }
        }
        Ok(chain)
    }
}

fn sample_at(edge: &Edge, child: &str, stamp: Duration) -> Result<Isometry3<f64>, TfError> {
    let samples = &edge.samples;
    let (Some(&(first_stamp, first)), Some(&(last_stamp, last))) =
        (samples.front(), samples.back())
    else {
        return Err(TfError::UnknownFrame(child.to_string()));
    };
    if edge.is_static || stamp.is_zero() {
        return Ok(last);
    }
    let no_data = |lag: Duration| TfError::NoDataAtTime {
        parent: edge.parent.clone(),
        child: child.to_string(),
        lag_secs: lag.as_secs_f64(),
    };
    if stamp <= first_stamp {
        let lag = first_stamp - stamp;
        return if lag <= EXTRAPOLATION_LIMIT {
            Ok(first)
        } else {
            Err(no_data(lag))
        };
    }
    if stamp >= last_stamp {
        let lag = stamp - last_stamp;
        return if lag <= EXTRAPOLATION_LIMIT {
            Ok(last)
        } else {
            Err(no_data(lag))
        };
    }
    let after = samples.partition_point(|(s, _)| *s < stamp);
    let (t0, a) = samples[after - 1];
    let (t1, b) = samples[after];
    let span = (t1 - t0).as_secs_f64();
    let t = if span > 0.0 {
        (stamp - t0).as_secs_f64() / span
    } else {
        1.0
    };
    Ok(a.lerp_slerp(&b, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Point3, Translation3, UnitQuaternion, Vector3};

    fn iso(x: f64, y: f64, z: f64, yaw: f64) -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(x, y, z),
            UnitQuaternion::from_euler_angles(0.0, 0.0, yaw),
        )
    }

    #[test]
    fn a_point_is_carried_through_a_chain_of_edges() {
        let mut tf = TfBuffer::default();
        // body → ptz_base 0.5 m up; body → cam 0.3 m forward, turned 90° left.
        tf.insert(
            "body",
            "ptz_base",
            Duration::ZERO,
            iso(0.0, 0.0, 0.5, 0.0),
            true,
        );
        tf.insert(
            "body",
            "cam",
            Duration::ZERO,
            iso(0.3, 0.0, 0.0, std::f64::consts::FRAC_PI_2),
            true,
        );
        let ptz_t_cam = tf
            .lookup("ptz_base", "cam", Duration::from_secs(5))
            .unwrap();
        // 2 m along the camera's x = 2 m to the body's left.
        let p = ptz_t_cam.transform_point(&Point3::new(2.0, 0.0, 0.0));
        assert!(
            (p.coords - Vector3::new(0.3, 2.0, -0.5)).norm() < 1e-9,
            "{p:?}"
        );
        assert!(matches!(
            tf.lookup("ptz_base", "nowhere", Duration::ZERO),
            Err(TfError::UnknownFrame(_))
        ));
        tf.insert("map", "odom", Duration::ZERO, iso(0.0, 0.0, 0.0, 0.0), true);
        assert!(matches!(
            tf.lookup("odom", "cam", Duration::ZERO),
            Err(TfError::NotConnected { .. })
        ));
    }

    #[test]
    fn dynamic_edges_interpolate_and_refuse_stale_times() {
        let mut tf = TfBuffer::default();
        let s = Duration::from_secs;
        tf.insert("odom", "body", s(100), iso(0.0, 0.0, 0.0, 0.0), false);
        tf.insert("odom", "body", s(102), iso(2.0, 0.0, 0.0, 0.0), false);
        let mid = tf.lookup("odom", "body", s(101)).unwrap();
        assert!((mid.translation.vector.x - 1.0).abs() < 1e-9);
        assert!(
            tf.lookup("odom", "body", s(102) + Duration::from_millis(300))
                .is_ok()
        );
        assert!(matches!(
            tf.lookup("odom", "body", s(110)),
            Err(TfError::NoDataAtTime { .. })
        ));
        // Old samples go.
        tf.insert("odom", "body", s(200), iso(3.0, 0.0, 0.0, 0.0), false);
        assert!(tf.lookup("odom", "body", s(101)).is_err());
    }
}
