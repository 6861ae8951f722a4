//! The recorder's integration tests, one binary (as ripgrep's tests/integration): the real
//! recorder binary on the live kernel. They need root (see `common::live_kernel`).

mod buffers;
mod cgroups;
mod common;
mod docker;

mod exactness;
mod filters;
mod flight;
mod flood_loss;
mod generate;
mod least_privilege;
mod limits;
mod output_errors;
mod overload;
mod privileges;
mod record_workload;
mod rotation;
mod samples_real;
mod sigkill_recovery;
mod small_values;
mod socket_filters;
mod sockets;
mod streaming;
mod unsupported_kernel;
