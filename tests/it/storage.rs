//! The data file: creation, reopening, group commit under concurrency.

use crate::harness::TestServer;

#[tokio::test]
async fn data_file_and_private_key_files_are_created() {
    let mut server = TestServer::start().await;
    let dir = server.data_dir().to_path_buf();
    server.stop().await;
    use std::os::unix::fs::PermissionsExt as _;
    assert!(dir.join("gatehouse.redb").is_file());
    let mode = std::fs::metadata(dir.join("master.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"));
    // No private key material in clear in the data file.
    let data = std::fs::read(dir.join("gatehouse.redb")).unwrap();
    assert!(!String::from_utf8_lossy(&data).contains("PRIVATE KEY"));
}
