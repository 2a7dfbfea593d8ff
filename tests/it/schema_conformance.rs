//! What schemathesis holds the server to (issue 16), kept as fast tests: a 405 names the
//! resource's methods in `Allow`, and the document declares the bounds the server enforces.

use crate::harness::{assert_error, TestServer};

#[tokio::test]
async fn a_405_names_the_methods_of_the_resource_in_allow() {
    let server = TestServer::start().await;
    let allow = |resp: &reqwest::Response| {
        resp.headers().get("allow").map(|v| v.to_str().unwrap().to_string())
    };
    let resp = server.client.delete(server.url("/health/")).send().await.unwrap();
    assert_eq!(allow(&resp).as_deref(), Some("GET, HEAD"));
    assert_error(resp, 405).await;
    // A literal segment wins over `{id}`: the methods are those of `/stats`, not of `/{id}`.
    let stats = server.url("/api/grpc/api-keys/stats/");
    let resp = server.client.request(reqwest::Method::OPTIONS, stats).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(allow(&resp).as_deref(), Some("GET, HEAD"));
    let resp = server.client.delete(server.url("/api/projects/")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(allow(&resp).as_deref(), Some("GET, POST, HEAD"));
    // An alias answers for the documented path it stands for.
    let alias = server.url("/cfg/grpc/api-keys/stats/");
    let resp = server.client.put(alias).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(allow(&resp).as_deref(), Some("GET, HEAD"));
}

#[tokio::test]
async fn the_document_declares_paging_bounds_nullables_and_error_statuses() {
    let server = TestServer::start().await;
    let doc: serde_json::Value = server.get("/api/schema/").await.json().await.unwrap();
    let list = &doc["paths"]["/api/projects"]["get"];
    let param = |name: &str| {
        list["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["schema"]
            .clone()
    };
    assert_eq!(param("page")["minimum"], 1);
    assert_eq!(param("page")["maximum"], 100);
    assert_eq!(param("page_size")["minimum"], 1);
    assert_eq!(param("page_size")["maximum"], 1000);
    assert_eq!(param("organization")["minimum"], 0);
    assert_eq!(param("organization")["maximum"], u64::MAX);
    for status in ["400", "401", "403", "404", "409", "413", "415", "429"] {
        assert_eq!(
            list["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{status}"
        );
    }
    let page = &doc["components"]["schemas"]["Page_Project"]["properties"];
    assert_eq!(page["next"]["nullable"], true);
    assert_eq!(page["previous"]["nullable"], true);
    assert!(page["count"].get("nullable").is_none());
    // The YAML form carries the same declarations.
    let yaml = server.get("/api/schema/?format=yaml").await.text().await.unwrap();
    assert!(yaml.contains("nullable: true"), "{}", &yaml[..200]);
}
