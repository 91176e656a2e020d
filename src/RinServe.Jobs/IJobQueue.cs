using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>
/// The job queue and result store, one interface for both backends (Redis Streams and in-process).
/// The API side enqueues, reads, watches and cancels; the worker side takes, reports and completes.
/// Calls that cannot reach the backend throw <see cref="QueueUnavailableException"/>.
/// </summary>
public interface IJobQueue
{
    /// <summary>
    /// True when accepted jobs outlive this process (Redis): on shutdown a worker may stop taking jobs at once and
    /// leave the rest to other workers. False for the in-process queue, whose jobs end with the process.
    /// </summary>
    bool Durable { get; }

    /// <summary>Queues a job, unless the model's queue is full or the idempotency key was used before.</summary>
    Task<EnqueueResult> EnqueueAsync(JobSpec spec, IdempotencyClaim? idempotency, CancellationToken ct = default);

    /// <summary>The job with its current queue position, or null when unknown or expired.</summary>
    Task<JobRecord?> GetAsync(string id, CancellationToken ct = default);

    /// <summary>The k-th generated image of a succeeded job, or null.</summary>
    Task<GeneratedImage?> GetImageAsync(string id, int index, CancellationToken ct = default);

    /// <summary>Cancels a queued or running job; returns the job afterwards (unchanged when already finished), or null.</summary>
    Task<JobRecord?> CancelAsync(string id, CancellationToken ct = default);

    /// <summary>
    /// The current state first, then every change, ending after a terminal state.
    /// Ends at once when the job is unknown.
    /// </summary>
    IAsyncEnumerable<JobRecord> WatchAsync(string id, CancellationToken ct = default);

    /// <summary>
    /// Asks for an x̂0 preview of a queued or running job every <paramref name="every"/> steps; the smallest interval
    /// asked for wins. The worker learns it at its next heartbeat. False when the job is unknown or finished.
    /// </summary>
    Task<bool> RequestPreviewsAsync(string id, int every, CancellationToken ct = default);

    /// <summary>The latest x̂0 preview of a job, or null when none was made.</summary>
    Task<JobPreview?> GetPreviewAsync(string id, CancellationToken ct = default);

    /// <summary>Jobs waiting or running for a model.</summary>
    Task<long> DepthAsync(string model, CancellationToken ct = default);

    /// <summary>Throws when the backend is unreachable; used by the readiness check.</summary>
    Task PingAsync(CancellationToken ct = default);

    /// <summary>
    /// Takes up to <paramref name="max"/> jobs of one model: waits up to <paramref name="firstWait"/>
    /// for the first, then up to <paramref name="batchDelay"/> for more. Jobs whose worker died
    /// (no heartbeat for <c>Jobs:VisibilityTimeout</c>) are reclaimed here too.
    /// </summary>
    Task<IReadOnlyList<LeasedJob>> TakeAsync(
        string model, string consumer, int max, TimeSpan firstWait, TimeSpan batchDelay, CancellationToken ct = default);

    /// <summary>
    /// Returns once a job of one of <paramref name="models"/> may be waiting, or after <paramref name="maxWait"/>: an idle
    /// worker waits on all its models at once (then takes without waiting), instead of on each in turn.
    /// </summary>
    Task WaitForWorkAsync(IReadOnlyList<string> models, TimeSpan maxWait, CancellationToken ct = default);

    /// <summary>Marks a taken job running and counts the delivery; false when it was canceled meanwhile.</summary>
    Task<bool> MarkRunningAsync(LeasedJob job, CancellationToken ct = default);

    /// <summary>Best-effort progress report, with the step's x̂0 preview when one was asked for; never blocks the sampler.</summary>
    void ReportProgress(LeasedJob job, int step, GeneratedImage? preview = null);

    /// <summary>
    /// Keeps the held jobs invisible to other workers; returns those among them that were canceled and the
    /// previews their watchers asked for.
    /// </summary>
    Task<HeartbeatResult> HeartbeatAsync(string consumer, IReadOnlyList<LeasedJob> jobs, CancellationToken ct = default);

    /// <summary>
    /// Stores the images and marks the job succeeded, once: false when the job had already finished
    /// (canceled, or completed by another worker after a reclaim), in which case nothing is written.
    /// </summary>
    Task<bool> CompleteAsync(LeasedJob job, IReadOnlyList<GeneratedImage> images, CancellationToken ct = default);

    /// <summary>
    /// Records a failed attempt: the job is queued again, or after <c>Jobs:MaxDeliveries</c> deliveries
    /// it fails for good and goes to the dead-letter stream.
    /// </summary>
    Task FailAsync(LeasedJob job, string error, CancellationToken ct = default);

    /// <summary>Hands a job that was taken but not started back to the queue (worker shutdown).</summary>
    Task ReleaseAsync(LeasedJob job, CancellationToken ct = default);

    /// <summary>Drops the worker's hold on a job that was canceled while it held it.</summary>
    Task AcknowledgeAsync(LeasedJob job, CancellationToken ct = default);

    /// <summary>
    /// Up to <paramref name="max"/> webhooks due: jobs with a webhook that reached their end. The end and its webhook are
    /// written in one step (a Redis script), so none is lost between them; a delivery held by a process that died is
    /// handed out again after <c>Webhooks:ReclaimAfter</c> (Redis). Waits up to <paramref name="wait"/> when none is due.
    /// </summary>
    Task<IReadOnlyList<WebhookDue>> TakeWebhooksAsync(string consumer, int max, TimeSpan reclaimAfter, TimeSpan wait, CancellationToken ct = default);

    /// <summary>The delivery is over (delivered, or given up): it is not handed out again.</summary>
    Task AcknowledgeWebhookAsync(WebhookDue due, CancellationToken ct = default);
}

/// <summary>The loaded models, stepped a row at a time; the host implements it with RinSampler and ONNX Runtime.</summary>
public interface IImageGenerator
{
    /// <summary>Names of the models this process can run.</summary>
    IReadOnlyList<string> Models { get; }

    /// <summary>The step-level engine of one loaded model (<see cref="IRowEngine"/>); the caller disposes it.</summary>
    IRowEngine Open(string model);
}

/// <summary>
/// Rows of one model, stepped together: each <see cref="SampleRow"/> is one image at its own step, with its own settings,
/// and one <see cref="Step"/> is one network call over any set of them. Used from one thread at a time.
/// </summary>
public interface IRowEngine : IDisposable
{
    /// <summary>A row ready for its first step; <see cref="ArgumentException"/> when the settings or class do not fit the model.</summary>
    SampleRow CreateRow(ImageRequest image, SamplerSettings settings);

    /// <summary>One step of every row (none done yet); <paramref name="previews"/> is asked by row index and the row's step.</summary>
    void Step(IReadOnlyList<SampleRow> rows, IPreviewSink? previews);
}
