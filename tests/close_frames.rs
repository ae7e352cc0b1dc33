//! Every ending is told over websockets: `/rpc` answers a client's close with a close frame and
//! closes an over-limit message with 1009; an OpenAI-protocol client gets a close frame whose
//! code and reason say why its session ended.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An OpenAI-protocol client on `/v1/realtime`.
async fn openai_client(h: &Harness) -> Ws {
    let url = format!("ws://{}/v1/realtime?model=gpt-realtime", h.addr);
    tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect")
        .0
}

/// The close frame the server sends next (bounded wait), skipping other messages.
async fn close_frame(ws: &mut Ws) -> Option<(CloseCode, String)> {
    tokio::time::timeout(WAIT, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => {
                    return frame.map(|f| (f.code, f.reason.as_str().to_owned()));
                }
                Ok(_) => {}
                Err(e) => panic!("no close frame, the read failed: {e}"),
            }
        }
        panic!("the socket ended without a close frame")
    })
    .await
    .expect("close in time")
}

#[tokio::test]
async fn rpc_answers_a_clients_close_and_closes_an_oversized_message_with_1009() {
    let h = harness_with(
        |_| {},
        |c| {
            c.server.max_message_bytes = 32 * 1024;
            c.server.max_frame_bytes = 64 * 1024;
        },
    )
    .await;
    let url = format!("ws://{}/rpc", h.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    ws.send(Message::Close(None)).await.expect("close");
    let answer = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("answered in time");
    assert!(
        matches!(answer, Some(Ok(Message::Close(_)))),
        "the close is answered with a close frame: {answer:?}"
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    ws.send(Message::text("x".repeat(100 * 1024)))
        .await
        .expect("send");
    let (code, reason) = close_frame(&mut ws)
        .await
        .expect("a close frame with a code");
    assert_eq!(code, CloseCode::Size);
    assert_eq!(reason, "message too big");
}

#[tokio::test]
async fn an_openai_client_is_told_why_its_session_ended() {
    let h = harness().await;
    let mut ws = openai_client(&h).await;
    // The model goes away (the simulator's `close:` trigger).
    let item = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "close: now"}]}});
    ws.send(Message::text(item.to_string()))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    let (code, reason) = close_frame(&mut ws)
        .await
        .expect("a close frame with a code");
    assert_eq!(code, CloseCode::Away);
    assert_eq!(reason, "transport_closed");
}

#[tokio::test]
async fn a_bogus_client_event_gets_an_error_and_the_openai_conversation_goes_on() {
    let h = harness().await;
    let mut ws = openai_client(&h).await;
    ws.send(Message::text(r#"{"type":"bogus"}"#))
        .await
        .expect("send");
    let next_of = async |ws: &mut Ws, ty: &str| -> serde_json::Value {
        tokio::time::timeout(WAIT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                        if v["type"] == ty {
                            return v;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the session ended instead: {other:?}"),
                }
            }
        })
        .await
        .expect("in time")
    };
    let error = next_of(&mut ws, "error").await;
    assert!(error["error"]["message"].is_string(), "{error}");
    let item = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "are you still there"}]}});
    ws.send(Message::text(item.to_string()))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    let done = next_of(&mut ws, "response.output_audio_transcript.done").await;
    assert!(
        done["transcript"]
            .as_str()
            .is_some_and(|t| t.contains("still there")),
        "{done}"
    );
}
