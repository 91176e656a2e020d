using System.Text.Json;
using System.Text.Json.Serialization;
using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>The life of a job: queued → running → one of the three terminal states.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobState>))]
public enum JobState { Queued, Running, Succeeded, Failed, Canceled }

/// <summary>
/// What one job generates, already validated by the API: <see cref="Count"/> images of one class
/// with seeds <see cref="Seed"/>, Seed+1, ... so each image is reproducible on its own.
/// </summary>
/// <param name="Model">Name of the loaded model (its <c>rin.name</c>).</param>
/// <param name="Owner">Hash of the API key that created the job, or null when keys are off.</param>
/// <param name="Webhook">The URL told of the job's end (succeeded, failed, canceled), already checked; null: none.</param>
public sealed record JobSpec(
    string Model,
    int Steps,
    [property: JsonConverter(typeof(SamplerNameJsonConverter))] string Sampler,
    string Schedule,
    float Guidance,
    long ClassId,
    ulong Seed,
    int Count,
    string Format,
    string? Owner,
    string? Webhook = null)
{
    /// <summary>Jobs are batched together only when these are equal.</summary>
    [JsonIgnore]
    public SamplerSettings Settings => new(Steps, Sampler, Schedule, Guidance);

    /// <summary>
    /// Rows of the network's batch this job adds at every step: its images, twice over with classifier-free guidance
    /// (a conditional and an unconditional pass). A batch's step cost grows with its rows.
    /// </summary>
    [JsonIgnore]
    public int NetworkRows => Count * (Guidance > 0 ? 2 : 1);

    /// <summary>The sampler requests of this job, one per image.</summary>
    public IEnumerable<ImageRequest> ImageRequests() =>
        Enumerable.Range(0, Count).Select(k => new ImageRequest(ClassId, unchecked(Seed + (ulong)k)));
}

/// <summary>A snapshot of one job as the store knows it.</summary>
/// <param name="Step">Finished sampler steps, 0..Spec.Steps.</param>
/// <param name="QueuePosition">1 = next to run; null unless queued.</param>
/// <param name="Deliveries">How many times a worker started it (more than 1 after a reclaim or retry).</param>
/// <param name="PreviewStep">The step of the latest x̂0 preview (<see cref="IJobQueue.GetPreviewAsync"/>); 0 when there is none.</param>
public sealed record JobRecord(
    string Id,
    JobSpec Spec,
    JobState State,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    int Step,
    int? QueuePosition,
    string? Error,
    int ImageCount,
    int Deliveries,
    int PreviewStep = 0)
{
    public bool IsTerminal => State is JobState.Succeeded or JobState.Failed or JobState.Canceled;
}

/// <summary>A low-resolution x̂0 of a running job's first image after <paramref name="Step"/> steps.</summary>
public sealed record JobPreview(int Step, GeneratedImage Image);

/// <summary>What a heartbeat learns about the jobs a worker holds.</summary>
/// <param name="Canceled">Ids of the jobs canceled meanwhile.</param>
/// <param name="PreviewEvery">Per job id, every how many steps a watcher wants an x̂0 preview; jobs nobody asked for are absent.</param>
public sealed record HeartbeatResult(IReadOnlySet<string> Canceled, IReadOnlyDictionary<string, int> PreviewEvery);

/// <summary>An Idempotency-Key together with a fingerprint of the parameters it was used with.</summary>
public sealed record IdempotencyClaim(string Key, string Fingerprint);

public enum EnqueueStatus
{
    /// <summary>A new job was queued.</summary>
    Created,
    /// <summary>The idempotency key was used before with the same parameters: that job is returned.</summary>
    Existing,
    /// <summary>The idempotency key was used before with other parameters.</summary>
    IdempotencyConflict,
    /// <summary>The model's queue is at <c>Jobs:MaxQueueLength</c>.</summary>
    QueueFull,
    /// <summary>The job's API key already has <c>Jobs:MaxJobsPerKey</c> unfinished jobs.</summary>
    KeyFull,
    /// <summary>The process is draining for shutdown and takes no new jobs (in-process queue only).</summary>
    ShuttingDown,
}

public sealed record EnqueueResult(EnqueueStatus Status, JobRecord? Job, TimeSpan? RetryAfter = null);

/// <summary>A job a worker holds. <see cref="Lease"/> identifies this delivery (a stream entry id in Redis).</summary>
public sealed record LeasedJob(JobRecord Job, string Lease)
{
    public string Id => Job.Id;
}

/// <summary>The queue backend cannot be reached (Redis down, circuit open): the API answers 503.</summary>
public sealed class QueueUnavailableException(string message, TimeSpan retryAfter, Exception? inner = null)
    : Exception(message, inner)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// A job's sampler as its canonical name (<see cref="Samplers"/>). Reads the numbers that jobs queued before samplers had
/// names were stored with (0 ddim, 1 ddpm, 2 ddpm-small), so a queue that outlives an upgrade loses nothing.
/// </summary>
public sealed class SamplerNameJsonConverter : JsonConverter<string>
{
    private static readonly string[] Legacy = ["ddim", "ddpm", "ddpm-small"];

    public override string Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var number) && number >= 0 && number < Legacy.Length)
        {
            return Legacy[number];
        }

        var text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        if (text is null)
        {
            throw new JsonException($"a sampler must be a name ({string.Join(", ", Samplers.Names)})");
        }

        return Samplers.TryGet(text, out var sampler) ? sampler.Name : text;
    }

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

/// <summary>A webhook to send: the job that reached its end, and this worker's hold on the delivery (a stream entry in Redis).</summary>
public sealed record WebhookDue(string JobId, string Lease);
