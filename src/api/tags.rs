//! One OpenAPI tag per resource; the request log's `service_name` is `gatehouse.<Tag>`.

use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and the API index.
    Health,
    /// Registration, login, logout, profile, passwords and JWTs.
    Auth,
    /// Organizations and their members.
    Organizations,
    /// Personal access tokens (JWTs for scripts and Prometheus).
    PersonalAccessTokens,
    /// User API keys and the staff view of all keys.
    ApiKeys,
    /// Projects.
    Projects,
    /// Environments of projects.
    Environments,
    /// Encrypted environment variables, their history, import and export.
    Variables,
    /// The audit log.
    AuditLogs,
    /// Request monitoring (django-cfg's gRPC monitor).
    Monitoring,
    /// The proto-file registry (django-cfg's gRPC proto files).
    ProtoFiles,
    /// Prometheus metrics per organization and global (ShellUI).
    Metrics,
    /// Appliance administration by staff (accounts).
    Admin,
    /// API deployments (Unstract API v2): workflows and the deployments that publish them.
    ApiDeployments,
}

impl ApiTags {
    /// The tag's name as it appears in the document and in `service_name`.
    pub fn service_name(tag: &str) -> String {
        format!("gatehouse.{tag}")
    }
}
