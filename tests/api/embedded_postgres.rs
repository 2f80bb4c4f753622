//! The embedded cluster's handle: dropping it stops a server it started, and nothing else, so a
//! failed test leaves no cluster behind while `citypin postgres start` leaves its own running.

use citypin::db::EmbeddedPostgres;

#[test]
fn dropping_a_handle_stops_the_server_it_started_but_not_one_it_found_or_was_told_to_keep() {
    let dir = std::env::temp_dir().join(format!("citypin-embedded-{}", uuid::Uuid::new_v4()));
    let handle = || EmbeddedPostgres::new(&dir, None).expect("cluster");

    let mut starter = handle();
    starter.start().expect("start");
    let mut attached = handle();
    attached.start().expect("attach to the running server");
    drop(attached);
    assert!(
        starter.is_running().expect("status"),
        "a handle that found it running must not stop it"
    );
    drop(starter);
    assert!(
        !handle().is_running().expect("status"),
        "the handle that started it stops it"
    );

    let mut kept = handle();
    kept.start().expect("start again");
    kept.keep_running();
    drop(kept);
    let mut after = handle();
    assert!(
        after.is_running().expect("status"),
        "a server told to keep running outlives its handle"
    );
    after.stop_always().expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
