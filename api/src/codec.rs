//! The config stream's gRPC codec: prost encoding, with small buffers.
//!
//! tonic encodes a stream's messages into one buffer per stream and, by
//! default, keeps gathering messages until 32 KiB are waiting. The buffer
//! then stays allocated at the largest size it ever reached for as long as
//! the stream lives, and a config stream lives as long as its proxy. With
//! 1,000 proxies that was tens of megabytes of idle buffers in the
//! controller. Here each message is handed to HTTP/2 as soon as it is
//! encoded (the stream's parts are already bounded, see the control plane's
//! `PART_BYTES`), and room for a message is reserved at its exact size
//! before encoding (rather than doubling as prost writes), so the buffer
//! stays about one part large.

use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// Initial capacity of a stream's encode and decode buffers.
const BUFFER: usize = 1024;
/// Yield every encoded message at once (any non-empty buffer is over this).
const YIELD_AT: usize = 1;

/// prost encoding with [`BUFFER`]-sized buffers that yield every message.
#[derive(Debug, Clone)]
pub struct StreamCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StreamCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for StreamCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ExactEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ExactEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::new(BUFFER, YIELD_AT))
    }
}

/// prost encoding that reserves each message's exact size first.
#[derive(Debug, Clone)]
pub struct ExactEncoder<T>(PhantomData<T>);

impl<T: prost::Message> Encoder for ExactEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER, YIELD_AT)
    }
}
