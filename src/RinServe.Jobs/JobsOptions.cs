using System.ComponentModel.DataAnnotations;

namespace RinServe.Jobs;

/// <summary>Queue and result store settings (section <c>Jobs</c>).</summary>
public sealed class JobsOptions
{
    public const string Section = "Jobs";

    /// <summary>Most jobs waiting or running per model; beyond it POST /generate answers 429 with Retry-After.</summary>
    [Range(1, 1_000_000)]
    public int MaxQueueLength { get; set; } = 1000;

    /// <summary>
    /// Most unfinished jobs (queued or running, of every model) one API key may have; beyond it POST /generate answers 429
    /// with Retry-After, so one caller cannot fill the queues that others share. Only with API keys on: without them there
    /// is no caller to count (the per-model <see cref="MaxQueueLength"/> and the rate limiter still hold).
    /// </summary>
    [Range(1, 1_000_000)]
    public int MaxJobsPerKey { get; set; } = 100;

    /// <summary>How long finished jobs and their images are kept.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan ResultTtl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long an unfinished job may live in the store before it expires.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan JobTtl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>A job held this long without a worker heartbeat is taken over by another worker (Redis).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan VisibilityTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>After this many deliveries (starts, including reclaims) a failing job goes to the dead-letter stream.</summary>
    [Range(1, 100)]
    public int MaxDeliveries { get; set; } = 3;

    /// <summary>How often a worker looks for jobs of dead workers to reclaim (Redis XAUTOCLAIM).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "01:00:00")]
    public TimeSpan ReclaimInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retry-After sent with 429 when a queue is full.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan QueueFullRetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Prefix of every Redis key, so several deployments can share one Redis.</summary>
    [Required(AllowEmptyStrings = false)]
    public string KeyPrefix { get; set; } = "rin:";

    /// <summary>Most entries kept in the dead-letter stream (approximate trim).</summary>
    [Range(1, 10_000_000)]
    public int DeadLetterMaxLength { get; set; } = 10_000;

    /// <summary>How often each process samples the queue depth per model for the <c>rinserve_queue_depth</c> gauge (autoscaling signal).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan DepthSampleInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Timeout of one Redis call (Polly timeout per attempt).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan RedisAttemptTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Retries of a failed Redis call, with jittered exponential backoff.</summary>
    [Range(0, 10)]
    public int RedisRetries { get; set; } = 2;

    /// <summary>First retry delay; later ones grow exponentially.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:00:10")]
    public TimeSpan RedisRetryDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long the circuit stays open after Redis failures; also the Retry-After of a 503.</summary>
    [Range(typeof(TimeSpan), "00:00:00.500", "00:10:00")]
    public TimeSpan RedisBreakDuration { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>Worker settings (section <c>Workers</c>): iteration-level batching, polling, heartbeat.</summary>
public sealed class WorkersOptions
{
    public const string Section = "Workers";

    /// <summary>
    /// Most jobs of one model running together in a worker (their rows step in one network call); new jobs join at any
    /// step boundary, whatever their sampler, steps, schedule and guidance. 1: one job at a time.
    /// </summary>
    [Range(1, 256)]
    public int MaxBatch { get; set; } = 4;

    /// <summary>
    /// Most network rows per step of one model: images, counted twice when guided (<see cref="JobSpec.NetworkRows"/>). A job
    /// joins only while its rows fit; a job larger than it runs alone. With <c>Sampling:MaxImagesPerRequest</c> it bounds
    /// the longest step at max(MaxBatchRows, 2 x MaxImagesPerRequest) rows, and a job at <c>Sampling:MaxSteps</c> of them,
    /// which the shutdown timeout must cover (docs/DEPLOY.md).
    /// </summary>
    [Range(1, 1024)]
    public int MaxBatchRows { get; set; } = 8;

    /// <summary>
    /// While more than one model has rows to step, the longest a model's step should take (by its measured time per network
    /// row): it then carries only as many of its jobs as fit, at least one, each in turn. Alone, a model steps all its rows.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:00:10")]
    public TimeSpan StepQuantum { get; set; } = TimeSpan.FromMilliseconds(25);

    /// <summary>
    /// While more than one model has rows to step, the one with the least sampler work left (its jobs' steps left by its
    /// measured time per row) steps first, as long as it is less than this much sampler time ahead of the model charged
    /// least: a cheap request finishes in one go instead of every other slice beside a dear model's stream, which loses at
    /// most this much to it per burst. Zero: plain equal shares of time.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10")]
    public TimeSpan ShortWorkFirst { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// After the first job, how long an idle worker waits for more (in process), so a burst starts together; a busy worker
    /// takes new jobs at every step without waiting. 0 by default: later jobs of a burst join one step later anyway.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10")]
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How often an idle worker polls Redis for new jobs. Enqueues also publish a wake-up, so this is only
    /// the fallback for a lost wake-up (StackExchange.Redis cannot block on XREADGROUP).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:00:10")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How often a worker renews its hold on running jobs and checks them for cancellation.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Pause after a failed queue call before the worker tries again.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan ErrorBackoff { get; set; } = TimeSpan.FromSeconds(1);
}
