//! Listing the sound devices ALSA knows and finding the one a config names, for playback or capture; the errors
//! name the device asked for and list the devices there are.

use super::DeviceName;
use cpal::traits::{DeviceTrait, HostTrait};
use serde::Serialize;

/// One device as `bluebridge devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// The name the config accepts (`device = "…"`).
    pub name: String,
    /// cpal's description (first line; also accepted as a name).
    pub description: String,
    /// It can play.
    pub output: bool,
    /// It can record.
    pub capture: bool,
}

/// Why a device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No such device; lists those there are.
    #[error("sound device {name} not found; available {direction} devices: {available}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// `output` or `capture`.
        direction: &'static str,
        /// Comma-separated names.
        available: String,
    },
    /// The device is there but cannot be used (busy, no permission, no usable format…).
    #[error("sound device {name}: {message}; available {direction} devices: {available}")]
    Unusable {
        /// The name asked for.
        name: String,
        /// What failed.
        message: String,
        /// `output` or `capture`.
        direction: &'static str,
        /// Comma-separated names.
        available: String,
    },
    /// ALSA itself failed (listing).
    #[error("sound devices: {0}")]
    Host(String),
}

impl DeviceError {
    /// True when the device is missing (rather than there but unusable).
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

fn host() -> cpal::Host {
    cpal::host_from_id(cpal::HostId::Alsa).unwrap_or_else(|_| cpal::default_host())
}

fn describe(d: &cpal::Device) -> (String, String) {
    let id = d.id().map(|i| i.id().to_string()).unwrap_or_default();
    let desc = d.description().map(|d| d.name().to_string()).unwrap_or_default();
    (id, desc)
}

/// Every device ALSA knows, with the names the config accepts.
pub fn list_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    let devices = host().devices().map_err(|e| DeviceError::Host(e.to_string()))?;
    Ok(devices
        .map(|d| {
            let (name, description) = describe(&d);
            DeviceInfo {
                name,
                description,
                output: d.supports_output(),
                capture: d.supports_input(),
            }
        })
        .collect())
}

fn available(output: bool) -> String {
    match list_devices() {
        Ok(l) => {
            let names: Vec<String> = l
                .into_iter()
                .filter(|d| if output { d.output } else { d.capture })
                .map(|d| d.name)
                .collect();
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        }
        Err(e) => format!("(cannot list: {e})"),
    }
}

/// Finds the device `name` for playback (`output`) or capture.
pub fn find(name: &DeviceName, output: bool) -> Result<cpal::Device, DeviceError> {
    let direction = if output { "output" } else { "capture" };
    let h = host();
    let not_found = || DeviceError::NotFound {
        name: name.to_string(),
        direction,
        available: available(output),
    };
    if *name == DeviceName::Default {
        let d = if output {
            h.default_output_device()
        } else {
            h.default_input_device()
        };
        return d.ok_or_else(not_found);
    }
    let devices = h.devices().map_err(|e| DeviceError::Host(e.to_string()))?;
    for d in devices {
        let (id, desc) = describe(&d);
        if name.matches(&id, &desc)
            && (if output {
                d.supports_output()
            } else {
                d.supports_input()
            })
        {
            return Ok(d);
        }
    }
    Err(not_found())
}

/// A device that is there but cannot be used as asked: the error names it and lists the devices there are.
pub fn unusable(name: &DeviceName, output: bool, message: String) -> DeviceError {
    DeviceError::Unusable {
        name: name.to_string(),
        message,
        direction: if output { "output" } else { "capture" },
        available: available(output),
    }
}
