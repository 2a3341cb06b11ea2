//! The tunnel over an in-memory pipe: streams are independent, and a reader
//! that stops reading holds back only its own stream.

use std::time::Duration;

use tether_tunnel::{Side, Tunnel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::compat::TokioAsyncReadCompatExt;

fn pair() -> (
    Tunnel,
    tokio::sync::mpsc::UnboundedReceiver<tether_tunnel::TunnelStream>,
    Tunnel,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (manager, _in, _t1) = Tunnel::start(a.compat(), Side::Manager);
    let (delegate, incoming, _t2) = Tunnel::start(b.compat(), Side::Delegate);
    (manager, incoming, delegate)
}

#[tokio::test]
async fn many_streams_echo_independently() {
    let (manager, mut incoming, _delegate) = pair();
    tokio::spawn(async move {
        while let Some(mut s) = incoming.recv().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(&mut s);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let m = manager.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = m.open().await.unwrap();
            let msg = format!("stream {i} ").repeat(1000 + i as usize * 100);
            s.write_all(msg.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = String::new();
            s.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A burst of streams the acceptor has not taken yet is queued, not dropped
/// (a bounded queue of 64 lost a third of 1,000 watches opened at once).
#[tokio::test]
async fn a_burst_of_streams_waits_for_the_acceptor() {
    const STREAMS: usize = 200;
    let (manager, mut incoming, _delegate) = pair();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let m = manager.clone();
        let opened = opened_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = m.open().await.unwrap();
            s.write_all(format!("{i}\n").as_bytes()).await.unwrap();
            s.flush().await.unwrap();
            let _ = opened.send(());
            let mut back = Vec::new();
            s.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, format!("{i}\n").into_bytes(), "stream {i}");
        }));
    }
    // Every stream is open and has sent its line before anything is accepted.
    for _ in 0..STREAMS {
        opened_rx.recv().await.unwrap();
    }
    tokio::spawn(async move {
        while let Some(mut s) = incoming.recv().await {
            tokio::spawn(async move {
                let mut line = Vec::new();
                let mut b = [0u8; 1];
                while s.read(&mut b).await.unwrap_or(0) == 1 {
                    line.push(b[0]);
                    if b[0] == b'\n' {
                        break;
                    }
                }
                let _ = s.write_all(&line).await;
                let _ = s.shutdown().await;
            });
        }
    });
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a stream was never answered: it was dropped")
            .unwrap();
    }
}

#[tokio::test]
async fn a_stalled_reader_blocks_only_its_own_stream() {
    let (manager, mut incoming, _delegate) = pair();
    // The delegate side writes 64 MiB into the first stream, which the manager
    // never reads; the second stream echoes.
    let (stalled_tx, stalled_rx) = tokio::sync::oneshot::channel::<u64>();
    tokio::spawn(async move {
        let mut first = incoming.recv().await.unwrap();
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0u64;
            loop {
                match tokio::time::timeout(Duration::from_millis(300), first.write_all(&chunk))
                    .await
                {
                    Ok(Ok(())) => sent += chunk.len() as u64,
                    Ok(Err(_)) => break,
                    Err(_) => break, // blocked: backpressure reached the sender
                }
                if sent > 64 << 20 {
                    break;
                }
            }
            let _ = stalled_tx.send(sent);
        });
        let mut second = incoming.recv().await.unwrap();
        let mut buf = [0u8; 5];
        second.read_exact(&mut buf).await.unwrap();
        second.write_all(&buf).await.unwrap();
        second.flush().await.unwrap();
        let _ = writer.await;
    });
    let mut first = manager.open().await.unwrap();
    first.write_all(b"x").await.unwrap(); // makes the stream known to the peer
    first.flush().await.unwrap();
    let sent = stalled_rx.await.unwrap();
    // The sender was held back near the stream's window, not allowed 64 MiB.
    assert!(sent < 8 << 20, "a stalled stream accepted {sent} bytes");
    let mut second = manager.open().await.unwrap();
    second.write_all(b"hello").await.unwrap();
    second.flush().await.unwrap();
    let mut back = [0u8; 5];
    second.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    drop(first);
}

#[tokio::test]
async fn streams_fail_when_the_connection_drops() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (manager, _in, _t1) = Tunnel::start(a.compat(), Side::Manager);
    let (_delegate, mut incoming, driver) = Tunnel::start(b.compat(), Side::Delegate);
    let mut s = manager.open().await.unwrap();
    s.write_all(b"ping").await.unwrap();
    s.flush().await.unwrap();
    let _peer = incoming.recv().await.unwrap();
    driver.abort(); // the delegate's end of the connection goes away
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf).await;
    assert!(
        r.is_err() || buf.is_empty(),
        "a stream of a dead tunnel must end"
    );
}

/// Writes larger than a frame, from one buffer or as vectored writes of
/// several, arrive whole and in order.
#[tokio::test]
async fn large_and_vectored_writes_arrive_whole_and_in_order() {
    let (manager, mut incoming, _delegate) = pair();
    tokio::spawn(async move {
        let mut s = incoming.recv().await.unwrap();
        let (mut r, mut w) = tokio::io::split(&mut s);
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    });
    let s = manager.open().await.unwrap();
    let (mut r, mut w) = tokio::io::split(s);
    // 3 MiB + a bit, not a multiple of any frame or buffer size.
    let data: Vec<u8> = (0..3_200_003u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        let (a, rest) = data.split_at(100_001);
        w.write_all(a).await.unwrap();
        // The rest as vectored writes of three uneven slices at a time.
        let mut rest = rest;
        while !rest.is_empty() {
            let (x, y) = rest.split_at(rest.len().min(70_007));
            let (y, z) = y.split_at(y.len().min(150_000));
            let z = &z[..z.len().min(70_000)];
            let slices = [
                std::io::IoSlice::new(x),
                std::io::IoSlice::new(y),
                std::io::IoSlice::new(z),
            ];
            let n = w.write_vectored(&slices).await.unwrap();
            assert!(n > 0, "a vectored write wrote nothing");
            rest = &rest[n..];
        }
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), expected.len());
    assert!(back == expected, "the bytes came back changed or reordered");
}
