//! How model `error` events end a conversation, or do not, by who the client is.

use super::*;

#[test]
fn for_openai_protocol_clients_a_model_error_is_passed_on_and_the_conversation_goes_on() {
    let mut e = engine_with(ModelVersion::V2, false);
    let outs = model(
        &mut e,
        ModelEvent::Error {
            message: "Invalid value: 'bogus'".into(),
        },
    );
    assert_eq!(
        outs,
        vec![Output::ToClient(Notification::Error {
            message: "Invalid value: 'bogus'".into()
        })]
    );
    assert!(!e.is_closed());
    e.handle_input(Input::Client(ClientCommand::AppendText {
        text: "hi".into(),
        role: TextRole::User,
    }));
    assert!(
        !frames(&drain(&mut e)).is_empty(),
        "still talking to the model"
    );
}
