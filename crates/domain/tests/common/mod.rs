//! What the domain's tests assert of every event `decide` produces.

use gongji_domain::{Event, State, Stream};

/// `event`, decided in `state`, is filed on its own stream and is admissible there: what a fold
/// of a foreign log checks holds of everything the rules produce.
pub fn assert_decided_event_holds(state: &State, stream: &Stream, event: &Event) {
    assert_eq!(
        &event.stream(),
        stream,
        "{} filed on another stream",
        event.kind()
    );
    assert_eq!(gongji_domain::state::admissible(state, event), Ok(()));
}
