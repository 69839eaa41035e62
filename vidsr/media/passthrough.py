"""The input's audio, subtitle and data streams in an output file.

Copied packet for packet where the container holds the codec, else audio re-encoded
to AAC, else dropped; each change with a warning naming the stream.  Used by the
sink of a single pass and by the join of a segmented batch run, so both write alike.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av

from vidsr.media.metadata import StreamTags, stream_metadata, stream_tags

log = logging.getLogger(__name__)

# FFmpeg's default layout per channel count: AVI and WAV often store only a count ("1 channels"),
# which the AAC encoder refuses; the default names the same channels in the usual order.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def named_layout(ctx: av.codec.context.CodecContext) -> av.AudioLayout | str:
    layout = ctx.layout
    if all(c.name == "NONE" for c in layout.channels) and ctx.channels in _DEFAULT_LAYOUTS:
        return _DEFAULT_LAYOUTS[ctx.channels]
    return layout


class Passthrough:
    """Maps input streams to output streams; ``warnings`` says what was not copied."""

    def __init__(self, out: av.container.OutputContainer, streams: list, final: Path) -> None:
        self.out = out
        self.copy: dict[int, av.stream.Stream] = {}
        self.encode: dict[int, av.stream.Stream] = {}
        self.warnings: list[str] = []
        self.tags: list[StreamTags] = []  # titles and languages the output should show
        supported = out.supported_codecs
        for s in streams:
            name = s.codec_context.name if s.codec_context else (getattr(s, "codec_tag", None) or "unknown")
            label = f"{s.type} stream #{s.index} ({name})"
            if name in supported:
                try:
                    o = out.add_stream_from_template(s)
                    o.metadata.update(stream_metadata(s.metadata))
                    self.copy[s.index] = o
                    self.tags.append(stream_tags(label, o.index, dict(s.metadata)))
                    continue
                except (av.error.FFmpegError, ValueError) as exc:
                    log.debug("cannot copy %s: %s", label, exc)
            if s.type == "audio" and "aac" in supported:
                o = out.add_stream("aac", rate=s.codec_context.sample_rate)
                o.layout = named_layout(s.codec_context)
                o.metadata.update(stream_metadata(s.metadata))
                self.encode[s.index] = o
                self.tags.append(stream_tags(label, o.index, dict(s.metadata)))
                self._warn(f"{label} re-encoded to AAC: {final.suffix} cannot hold {name}")
            else:
                self._warn(f"dropping {label}: {final.suffix} cannot hold it")

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def wants(self, packet: av.Packet) -> bool:
        return bool(packet.size) and (packet.stream.index in self.copy or packet.stream.index in self.encode)

    def write(self, packet: av.Packet) -> None:
        index = packet.stream.index
        if index in self.copy:
            packet.stream = self.copy[index]
            self.out.mux(packet)
        elif index in self.encode:
            for frame in packet.decode():
                frame.pts = None  # the encoder's sample counter times it, as its frame size differs
                self.out.mux(self.encode[index].encode(frame))

    def flush(self) -> None:
        for stream in self.encode.values():
            self.out.mux(stream.encode(None))
