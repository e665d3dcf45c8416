namespace MaskRcnn.Net.Video;

/// <summary>What ffprobe says about a video file's first video stream (and whether it has audio).</summary>
/// <param name="Path">The file.</param>
/// <param name="Width">Width of the frames as displayed, i.e. after the rotation (what <see cref="VideoFrameReader"/> yields).</param>
/// <param name="Height">Height of the frames as displayed, i.e. after the rotation.</param>
/// <param name="FrameRate">The stream's average frame rate (ffprobe's <c>avg_frame_rate</c>, or <c>r_frame_rate</c> when that is unknown).</param>
/// <param name="Duration">The stream's (else the container's) duration, when known.</param>
/// <param name="FrameCount">The number of frames the container declares (ffprobe's <c>nb_frames</c>; MP4/MOV have it,
/// Matroska usually not), or null.</param>
/// <param name="Rotation">The display rotation in counter-clockwise degrees (0, 90, 180 or 270): the stream's display
/// matrix as ffprobe reports it (its <c>rotation</c> side data; else the legacy clockwise <c>rotate</c> tag, negated).
/// ffmpeg applies it when decoding, so <see cref="VideoFrameReader"/> yields upright frames of
/// <paramref name="Width"/> × <paramref name="Height"/>.</param>
/// <param name="Codec">The video codec's ffmpeg name (h264, hevc, vp9, ffv1, …).</param>
/// <param name="AudioCodec">The first audio stream's codec name, or null when the file has no audio.</param>
/// <param name="StoredWidth">Width of the frames as stored (before the rotation).</param>
/// <param name="StoredHeight">Height of the frames as stored (before the rotation).</param>
public sealed record VideoInfo(
    string Path,
    int Width,
    int Height,
    FrameRate FrameRate,
    TimeSpan? Duration,
    long? FrameCount,
    int Rotation,
    string Codec,
    string? AudioCodec,
    int StoredWidth,
    int StoredHeight)
{
    /// <summary>True when the file has an audio stream.</summary>
    public bool HasAudio => AudioCodec is not null;

    /// <summary>
    /// <see cref="FrameCount"/> when declared, else the duration times the frame rate (rounded), else null: the total
    /// for progress and ETA (the decoder may yield a few frames more or fewer than an estimate).
    /// </summary>
    public long? EstimatedFrameCount =>
        FrameCount ?? (Duration is { } d && FrameRate.IsValid ? (long)Math.Round(d.TotalSeconds * FrameRate.Value) : null);

    /// <summary>Bytes of one decoded RGB frame (3 × Width × Height).</summary>
    public long FrameBytes => 3L * Width * Height;
}
