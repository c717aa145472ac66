//! Pointing the PTZ at people: the geometry and the policy, without ROS.
//!
//! A detection in a body camera becomes a point ([`camera_model`]: pixel box → ray → range
//! from the box height), is carried into the PTZ base frame ([`tf_buffer`]), chosen among
//! the people seen ([`selection`]), turned into pan, tilt and a zoom that frames the person
//! ([`pointing`], [`lens`]), and sent no more often than needed ([`limiter`]); [`aimer`] ties
//! these together. [`lens`] also gives `camera_info` its focal length at the zoom of capture;
//! [`people`] keeps the people seen and puts them into each PTZ frame (`ptz_detections`).
//! The node's adapter (`crate::ros::aiming`) moves ROS messages in and out; the simulator
//! draws people with the same [`lens`] and [`pointing`] conventions.

pub mod aimer;
pub mod camera_model;
pub mod lens;
pub mod limiter;
pub mod people;
pub mod pointing;
pub mod ptz_driver;
pub mod selection;
pub mod tf_buffer;
