//! API deployments (Unstract's api_v2 as the seed describes it): workflows (a template bound to
//! one environment), deployments that publish a workflow under its own key and limits, and
//! the executions of their calls. The rules and rows live here; running executions (the
//! worker pool, limits, waiting) is `services::deployments`.

pub mod api_deployments;
pub mod executions;
pub mod records;
pub mod tables;
pub mod template;
pub mod workflows;
