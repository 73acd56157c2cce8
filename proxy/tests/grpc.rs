//! A real gRPC bidirectional streaming call through the proxy: a tonic
//! server (Strait's own ConfigDiscovery service, implemented here as an
//! echo of versions) behind a Service, a tonic client addressing the Service
//! by name through the proxy's outbound listener.

mod support;

use std::pin::Pin;
use strait_api::wire::config_discovery_client::ConfigDiscoveryClient;
use strait_api::wire::config_discovery_server::{ConfigDiscovery, ConfigDiscoveryServer};
use strait_api::wire::{
    Ack, ConfigUpdate, Hello, ProxyMessage, ProxyStatusRequest, ProxyStatusResponse, proxy_message,
};
use support::{ProxyProc, services_yaml};
use tonic::{Request, Response, Status, Streaming};

/// Answers Hello with version 1 and every Ack(n) with version n + 1, then
/// ends with a trailer status after version 3.
struct Echo;

type Updates = Pin<Box<dyn futures_util::Stream<Item = Result<ConfigUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl ConfigDiscovery for Echo {
    type StreamStream = Updates;

    async fn stream(
        &self,
        req: Request<Streaming<ProxyMessage>>,
    ) -> Result<Response<Updates>, Status> {
        let mut inbound = req.into_inner();
        let out = async_stream_like(move |tx| async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let next = match msg.kind {
                    Some(proxy_message::Kind::Hello(_)) => 1,
                    Some(proxy_message::Kind::Ack(a)) if a.version < 3 => a.version + 1,
                    Some(proxy_message::Kind::Ack(_)) => {
                        let _ = tx.send(Err(Status::aborted("done after version 3"))).await;
                        return;
                    }
                    _ => continue,
                };
                if tx
                    .send(Ok(ConfigUpdate {
                        version: next,
                        ..ConfigUpdate::default()
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(out))
    }

    async fn proxy_status(
        &self,
        _: Request<ProxyStatusRequest>,
    ) -> Result<Response<ProxyStatusResponse>, Status> {
        Ok(Response::new(ProxyStatusResponse {
            replica: "echo".into(),
            ..Default::default()
        }))
    }
}

/// A stream fed by a task through a channel.
fn async_stream_like<F, Fut>(f: F) -> Updates
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<ConfigUpdate, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bidirectional_stream_through_the_proxy() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ConfigDiscoveryServer::new(Echo))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let proxy = ProxyProc::start(&[("m.yaml", services_yaml(&[("grpc-echo", &[port])]))]).await;
    // The client names the Service; every connection goes to the proxy.
    let outbound = proxy.outbound;
    let channel =
        tonic::transport::Endpoint::from_static("http://grpc-echo.default.svc.cluster.local")
            .connect_with_connector(tower::service_fn(move |_| async move {
                tokio::net::TcpStream::connect(outbound)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }))
            .await
            .unwrap();
    let mut client = ConfigDiscoveryClient::new(channel);

    // Unary call first.
    let status = client
        .proxy_status(ProxyStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.replica, "echo");

    // Bidirectional stream: each message answers the previous one.
    let (tx, rx) = tokio::sync::mpsc::channel::<ProxyMessage>(4);
    tx.send(ProxyMessage {
        kind: Some(proxy_message::Kind::Hello(Hello::default())),
    })
    .await
    .unwrap();
    let outbound_msgs =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut updates = client.stream(outbound_msgs).await.unwrap().into_inner();
    for want in 1..=3u64 {
        let u = updates.message().await.unwrap().expect("an update");
        assert_eq!(u.version, want);
        tx.send(ProxyMessage {
            kind: Some(proxy_message::Kind::Ack(Ack { version: u.version })),
        })
        .await
        .unwrap();
    }
    // The server ends the call with a gRPC status in the trailers.
    let end = updates.message().await.unwrap_err();
    assert_eq!(end.code(), tonic::Code::Aborted);
    assert_eq!(end.message(), "done after version 3");
    let seen = proxy.metric("strait_requests_total{direction=\"outbound\",service=\"default/grpc-echo:80\",route=\"default\",backend=\"default/grpc-echo:80\",code=\"200\"}").await;
    assert_eq!(seen, 2.0, "the unary and the streaming call");
}
