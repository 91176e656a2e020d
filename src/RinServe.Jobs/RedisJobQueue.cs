using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Registry;
using RinServe.Diffusion;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// The distributed backend: one Redis Stream per model read by the consumer group <c>workers</c>
/// (ack on success, XAUTOCLAIM of entries idle past the visibility timeout), a hash per job,
/// one key per image, pub/sub for change events, a dead-letter stream. Every state change that must
/// not race (enqueue with bound and idempotency, start, complete once, fail, cancel) is one Lua script.
/// </summary>
public sealed class RedisJobQueue : IJobQueue
{
    public bool Durable => true;

    private const string Group = "workers";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly IConnectionMultiplexer _redis;
    private readonly JobsOptions _options;
    private readonly TimeSpan _pollInterval;
    private readonly ResiliencePipeline _pipeline;
    private readonly JobMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisJobQueue> _logger;
    private readonly ConcurrentDictionary<string, bool> _groups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _nextReclaim = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, WakeSignal> _wake = new(StringComparer.Ordinal);

    public RedisJobQueue(
        IConnectionMultiplexer redis,
        IOptions<JobsOptions> options,
        IOptions<WorkersOptions> workers,
        ResiliencePipelineProvider<string> pipelines,
        JobMetrics metrics,
        TimeProvider time,
        ILogger<RedisJobQueue> logger)
    {
        _redis = redis;
        _options = options.Value;
        _pollInterval = workers.Value.PollInterval;
        _pipeline = pipelines.GetPipeline(RedisResilience.PipelineName);
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    private IDatabase Db => _redis.GetDatabase();
    private string Prefix => _options.KeyPrefix;
    private RedisKey StreamKey(string model) => Prefix + "q:" + model;
    private RedisKey JobKey(string id) => Prefix + "job:" + id;
    private RedisKey PreviewKey(string id) => Prefix + "pv:" + id;
    private RedisKey ImageKey(string id, int k) => Prefix + "img:" + id + ":" + k.ToString(CultureInfo.InvariantCulture);
    private RedisKey DeadLetterKey => Prefix + "dead";
    /// <summary>Ids of completed jobs, one entry per completion: lets tests and operators prove no job completed twice.</summary>
    private RedisChannel EventChannel(string id) => RedisChannel.Literal(Prefix + "ev:" + id);
    /// <summary>Published on every enqueue so idle workers wake at once instead of at their next poll.</summary>
    private string WakeChannel(string model) => Prefix + "wake:" + model;
    private long Seconds(TimeSpan t) => Math.Max(1, (long)Math.Ceiling(t.TotalSeconds));
    private string NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    private RedisKey IdempotencyKey(string? owner, string key)
    {
        // Hashed so any header text gives a short, safe key.
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes((owner ?? "") + "\n" + key));
        return Prefix + "idem:" + Convert.ToHexStringLower(hash);
    }

    private const string EnqueueScript = """
        if ARGV[7] == '1' then
          local existing = redis.call('GET', KEYS[3])
          if existing then return {'existing', existing} end
        end
        local len = redis.call('XLEN', KEYS[1])
        if len >= tonumber(ARGV[1]) then return {'full', tostring(len)} end
        local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[2])
        redis.call('HSET', KEYS[2], 'spec', ARGV[3], 'state', 'queued', 'created', ARGV[4], 'step', '0', 'entry', entry, 'deliveries', '0', 'images', '0')
        redis.call('EXPIRE', KEYS[2], ARGV[5])
        if ARGV[7] == '1' then redis.call('SET', KEYS[3], ARGV[2] .. '|' .. ARGV[6], 'EX', ARGV[8]) end
        redis.call('PUBLISH', ARGV[9], '1')
        return {'created', tostring(len + 1)}
        """;

    public async Task<EnqueueResult> EnqueueAsync(JobSpec spec, IdempotencyClaim? idempotency, CancellationToken ct = default)
    {
        await EnsureGroupAsync(spec.Model, ct).ConfigureAwait(false);
        var id = JobId.New();
        var createdAt = _time.GetUtcNow();
        var stream = StreamKey(spec.Model);
        RedisKey idemKey = idempotency is null ? (RedisKey)(Prefix + "idem:none") : IdempotencyKey(spec.Owner, idempotency.Key);
        var result = (RedisResult[])(await Call(db => db.ScriptEvaluateAsync(EnqueueScript,
            [stream, JobKey(id), idemKey],
            [
                _options.MaxQueueLength, id, JsonSerializer.Serialize(spec, Json),
                createdAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), Seconds(_options.JobTtl),
                idempotency?.Fingerprint ?? "", idempotency is null ? "0" : "1", Seconds(_options.ResultTtl), WakeChannel(spec.Model),
            ]), ct).ConfigureAwait(false))!;
        var outcome = (string)result[0]!;
        var detail = (string)result[1]!;
        switch (outcome)
        {
            case "existing":
                var bar = detail.IndexOf('|', StringComparison.Ordinal);
                var earlier = await GetAsync(detail[..bar], ct).ConfigureAwait(false);
                if (earlier is null)
                {
                    // The key outlived its job (TTLs differ by a second at most): treat as a conflict rather than guess.
                    return new EnqueueResult(EnqueueStatus.IdempotencyConflict, null);
                }
                return new EnqueueResult(detail[(bar + 1)..] == idempotency!.Fingerprint ? EnqueueStatus.Existing : EnqueueStatus.IdempotencyConflict, earlier);
            case "full":
                _metrics.SetDepth(spec.Model, long.Parse(detail, CultureInfo.InvariantCulture));
                return new EnqueueResult(EnqueueStatus.QueueFull, null, _options.QueueFullRetryAfter);
            default:
                _metrics.SetDepth(spec.Model, long.Parse(detail, CultureInfo.InvariantCulture));
                return new EnqueueResult(EnqueueStatus.Created, await ReadBackAsync(id, spec, createdAt, ct).ConfigureAwait(false));
        }
    }

    /// <summary>
    /// The job just queued, with its queue position. The job exists from the script on, so if Redis goes away before
    /// this second read the caller still gets the job (position unknown) rather than an error that invites a duplicate.
    /// </summary>
    private async Task<JobRecord> ReadBackAsync(string id, JobSpec spec, DateTimeOffset createdAt, CancellationToken ct)
    {
        try
        {
            return await GetAsync(id, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"Job {id} vanished right after it was queued.");
        }
        catch (QueueUnavailableException)
        {
            return new JobRecord(id, spec, JobState.Queued, createdAt, null, null, 0, null, null, 0, 0);
        }
    }

    public async Task<JobRecord?> GetAsync(string id, CancellationToken ct = default)
    {
        var fields = await Call(db => db.HashGetAllAsync(JobKey(id)), ct).ConfigureAwait(false);
        var record = ToRecord(id, fields);
        if (record is null || record.State != JobState.Queued)
        {
            return record;
        }
        var entry = fields.FirstOrDefault(f => f.Name == "entry").Value;
        var position = await PositionAsync(record.Spec.Model, entry!, ct).ConfigureAwait(false);
        return record with { QueuePosition = position };
    }

    private const string CountBetweenScript = "return #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2])";

    private async Task<int> PositionAsync(string model, string entry, CancellationToken ct)
    {
        var stream = StreamKey(model);
        var groups = await Call(db => db.StreamGroupInfoAsync(stream), ct).ConfigureAwait(false);
        var lastDelivered = groups.FirstOrDefault(g => g.Name == Group).LastDeliveredId ?? "0-0";
        // Entries after the group's last delivery and before ours are the jobs ahead of this one.
        var ahead = (long)await Call(db => db.ScriptEvaluateAsync(CountBetweenScript, [stream], ["(" + lastDelivered, "(" + entry]), ct).ConfigureAwait(false);
        return (int)ahead + 1;
    }

    public async Task<GeneratedImage?> GetImageAsync(string id, int index, CancellationToken ct = default)
    {
        if (index < 0)
        {
            return null;
        }
        var blob = await Call(db => db.StringGetAsync(ImageKey(id, index)), ct).ConfigureAwait(false);
        return ImageBlob.Decode(blob);
    }

    private const string CancelScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if not state then return 0 end
        if state == 'queued' or state == 'running' then
          redis.call('HSET', KEYS[1], 'state', 'canceled', 'finished', ARGV[1])
          redis.call('EXPIRE', KEYS[1], ARGV[2])
          if state == 'queued' then
            -- Nobody runs it yet: take it off the queue now (a worker that already read it acks it on start).
            redis.call('XDEL', KEYS[2], redis.call('HGET', KEYS[1], 'entry'))
          end
          redis.call('PUBLISH', ARGV[3], 'canceled')
        end
        return 1
        """;

    public async Task<JobRecord?> CancelAsync(string id, CancellationToken ct = default)
    {
        var job = await GetAsync(id, ct).ConfigureAwait(false);
        if (job is null || job.IsTerminal)
        {
            return job;
        }
        await Call(db => db.ScriptEvaluateAsync(CancelScript, [JobKey(id), StreamKey(job.Spec.Model)],
            [NowMs(), Seconds(_options.ResultTtl), Prefix + "ev:" + id]), ct).ConfigureAwait(false);
        await RefreshDepthAsync(job.Spec.Model).ConfigureAwait(false);
        return await GetAsync(id, ct).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<JobRecord> WatchAsync(string id, [EnumeratorCancellation] CancellationToken ct = default)
    {
        // Subscribe before the first read so no change between the two is lost.
        var subscription = await Call(_ => _redis.GetSubscriber().SubscribeAsync(EventChannel(id)), ct).ConfigureAwait(false);
        try
        {
            JobRecord? last = null;
            while (true)
            {
                var current = await GetAsync(id, ct).ConfigureAwait(false);
                if (current is null)
                {
                    yield break;
                }
                if (current != last)
                {
                    yield return current;
                    last = current;
                }
                if (current.IsTerminal)
                {
                    yield break;
                }
                await NextEventAsync(subscription, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            await subscription.UnsubscribeAsync().ConfigureAwait(false);
        }
    }

    private static async Task NextEventAsync(ChannelMessageQueue subscription, CancellationToken ct)
    {
        // Queue positions move without an event of this job, so look again at least once a second.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            await subscription.ReadAsync(timeout.Token).ConfigureAwait(false);
            while (subscription.TryRead(out _))
            {
                // Many progress events may have piled up; one read of the job covers them all.
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
        }
        ct.ThrowIfCancellationRequested();
    }

    private const string RequestPreviewsScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if state ~= 'queued' and state ~= 'running' then return 0 end
        local current = tonumber(redis.call('HGET', KEYS[1], 'preview_every') or '0')
        if current == 0 or tonumber(ARGV[1]) < current then redis.call('HSET', KEYS[1], 'preview_every', ARGV[1]) end
        return 1
        """;

    public async Task<bool> RequestPreviewsAsync(string id, int every, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        var asked = (long)await Call(db => db.ScriptEvaluateAsync(RequestPreviewsScript, [JobKey(id)], [every]), ct).ConfigureAwait(false);
        return asked == 1;
    }

    public async Task<JobPreview?> GetPreviewAsync(string id, CancellationToken ct = default)
    {
        var fields = await Call(db => db.HashGetAsync(PreviewKey(id), ["step", "image"]), ct).ConfigureAwait(false);
        return fields[0].HasValue && ImageBlob.Decode(fields[1]) is { } image ? new JobPreview((int)fields[0], image) : null;
    }

    public async Task<long> DepthAsync(string model, CancellationToken ct = default)
    {
        var depth = await Call(db => db.StreamLengthAsync(StreamKey(model)), ct).ConfigureAwait(false);
        _metrics.SetDepth(model, depth);
        return depth;
    }

    private async Task RefreshDepthAsync(string model)
    {
        try
        {
            await DepthAsync(model).ConfigureAwait(false);
        }
        catch (QueueUnavailableException)
        {
            // Only a gauge; the next call refreshes it.
        }
    }

    public Task PingAsync(CancellationToken ct = default) => Call(db => db.PingAsync(), ct);

    public async Task<IReadOnlyList<LeasedJob>> TakeAsync(
        string model, string consumer, int max, TimeSpan firstWait, TimeSpan batchDelay, CancellationToken ct = default)
    {
        await EnsureGroupAsync(model, ct).ConfigureAwait(false);
        var wake = await WakeSignalAsync(model).ConfigureAwait(false);
        var stream = StreamKey(model);
        var taken = new List<LeasedJob>();
        var deadline = _time.GetUtcNow() + firstWait;
        try
        {
            if (_time.GetUtcNow() >= _nextReclaim.GetValueOrDefault(model))
            {
                _nextReclaim[model] = _time.GetUtcNow() + _options.ReclaimInterval;
                var claimed = await Call(db => db.StreamAutoClaimAsync(stream, Group, consumer,
                    (long)_options.VisibilityTimeout.TotalMilliseconds, "0-0", max), ct).ConfigureAwait(false);
                foreach (var entry in claimed.ClaimedEntries)
                {
                    _logger.LogWarning("Reclaimed job entry {Entry} of model {Model} from a worker that stopped answering", entry.Id, model);
                    await AcceptAsync(stream, entry, taken, ct).ConfigureAwait(false);
                }
            }
            while (taken.Count < max)
            {
                // Taken before the read, so an enqueue between the read and the wait still wakes us.
                var woken = wake?.Next;
                var entries = await Call(db => db.StreamReadGroupAsync(stream, Group, consumer, ">", max - taken.Count), ct).ConfigureAwait(false);
                foreach (var entry in entries)
                {
                    await AcceptAsync(stream, entry, taken, ct).ConfigureAwait(false);
                }
                if (taken.Count >= max)
                {
                    break;
                }
                if (entries.Length == 0)
                {
                    if (_time.GetUtcNow() >= deadline)
                    {
                        break;
                    }
                    await WaitForWorkAsync(woken, PollInterval(deadline), ct).ConfigureAwait(false);
                }
                if (taken.Count > 0 && deadline > _time.GetUtcNow() + batchDelay)
                {
                    deadline = _time.GetUtcNow() + batchDelay;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested && taken.Count > 0)
        {
            // Shutting down while filling a batch: return what is held so the worker hands it back.
        }
        catch (RedisServerException ex) when (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            // Redis restarted without persistence: the group is gone. Make it again on the next take.
            _groups.TryRemove(model, out _);
        }
        return taken;
    }

    private async Task WaitForWorkAsync(Task? woken, TimeSpan interval, CancellationToken ct)
    {
        try
        {
            await (woken ?? Task.Delay(Timeout.Infinite, ct)).WaitAsync(interval, _time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // No wake-up: poll anyway (a publish can be lost while Redis reconnects).
        }
    }

    private async Task<WakeSignal?> WakeSignalAsync(string model)
    {
        if (_wake.TryGetValue(model, out var existing))
        {
            return existing;
        }
        var signal = new WakeSignal();
        try
        {
            await _redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(WakeChannel(model)), (_, _) => signal.Fire()).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisResilience.IsUnavailable(ex))
        {
            return null;
        }
        return _wake.GetOrAdd(model, signal);
    }

    /// <summary>A task that completes at the next wake-up message.</summary>
    private sealed class WakeSignal
    {
        private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Next => Volatile.Read(ref _next).Task;

        public void Fire() =>
            Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    private TimeSpan PollInterval(DateTimeOffset deadline)
    {
        var left = deadline - _time.GetUtcNow();
        var interval = _pollInterval;
        return left < interval ? (left > TimeSpan.Zero ? left : TimeSpan.Zero) : interval;
    }

    private async Task AcceptAsync(RedisKey stream, StreamEntry entry, List<LeasedJob> taken, CancellationToken ct)
    {
        var id = (string?)entry["id"];
        var fields = id is null ? [] : await Call(db => db.HashGetAllAsync(JobKey(id)), ct).ConfigureAwait(false);
        var job = id is null ? null : ToRecord(id, fields);
        var current = fields.FirstOrDefault(f => f.Name == "entry").Value;
        if (job is null || job.IsTerminal || current != entry.Id)
        {
            // Expired, canceled, finished, or a stale entry of a job that was queued again.
            await Call(db => AckAsync(db, stream, entry.Id), ct).ConfigureAwait(false);
            return;
        }
        var lease = new LeasedJob(job, entry.Id!);
        if (job.Deliveries >= _options.MaxDeliveries)
        {
            await FailCoreAsync(lease, $"gave up after {job.Deliveries} deliveries: the workers that ran it stopped", 0, ct).ConfigureAwait(false);
            _metrics.JobFailed(job.Spec.Model, "max_deliveries");
            return;
        }
        taken.Add(lease);
    }

    private static async Task<bool> AckAsync(IDatabase db, RedisKey stream, RedisValue entry)
    {
        await db.StreamAcknowledgeAsync(stream, Group, entry).ConfigureAwait(false);
        await db.StreamDeleteAsync(stream, [entry]).ConfigureAwait(false);
        return true;
    }

    private const string StartScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if state ~= 'queued' and state ~= 'running' then
          redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
          redis.call('XDEL', KEYS[2], ARGV[4])
          return 0
        end
        redis.call('HSET', KEYS[1], 'state', 'running', 'step', '0')
        redis.call('HSETNX', KEYS[1], 'started', ARGV[1])
        redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
        redis.call('PUBLISH', ARGV[2], 'running')
        return 1
        """;

    public async Task<bool> MarkRunningAsync(LeasedJob job, CancellationToken ct = default)
    {
        var started = (long)await Call(db => db.ScriptEvaluateAsync(StartScript, [JobKey(job.Id), StreamKey(job.Job.Spec.Model)],
            [NowMs(), Prefix + "ev:" + job.Id, Group, job.Lease]), ct).ConfigureAwait(false);
        return started == 1;
    }

    private const string ProgressScript = """
        if redis.call('HGET', KEYS[1], 'state') == 'running' then
          redis.call('HSET', KEYS[1], 'step', ARGV[1])
          redis.call('PUBLISH', ARGV[2], 'progress')
        end
        return 0
        """;

    private const string PreviewScript = """
        if redis.call('HGET', KEYS[1], 'state') == 'running' then
          redis.call('HSET', KEYS[1], 'step', ARGV[1], 'preview_step', ARGV[1])
          redis.call('HSET', KEYS[2], 'step', ARGV[1], 'image', ARGV[3])
          redis.call('EXPIRE', KEYS[2], ARGV[4])
          redis.call('PUBLISH', ARGV[2], 'progress')
        end
        return 0
        """;

    public void ReportProgress(LeasedJob job, int step, GeneratedImage? preview = null)
    {
        try
        {
            // Fire and forget: the sampler thread must never wait on the network; a lost update is harmless.
            if (preview is null)
            {
                Db.ScriptEvaluate(ProgressScript, [JobKey(job.Id)], [step, Prefix + "ev:" + job.Id], CommandFlags.FireAndForget);
            }
            else
            {
                Db.ScriptEvaluate(PreviewScript, [JobKey(job.Id), PreviewKey(job.Id)],
                    [step, Prefix + "ev:" + job.Id, ImageBlob.Encode(preview), Seconds(_options.ResultTtl)], CommandFlags.FireAndForget);
            }
        }
        catch (Exception ex) when (RedisResilience.IsUnavailable(ex) || ex is ObjectDisposedException)
        {
            // Redis is away (fail-fast backlog throws at once), or the process is past its shutdown timeout and the
            // connection is gone: progress is not worth failing the batch.
        }
    }

    public async Task<HeartbeatResult> HeartbeatAsync(string consumer, IReadOnlyList<LeasedJob> jobs, CancellationToken ct = default)
    {
        var canceled = new HashSet<string>(StringComparer.Ordinal);
        var previews = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var model in jobs.GroupBy(j => j.Job.Spec.Model))
        {
            // XCLAIM with min-idle 0 and JUSTID resets the entries' idle time without counting a delivery.
            var leases = model.Select(j => (RedisValue)j.Lease).ToArray();
            await Call(db => db.StreamClaimIdsOnlyAsync(StreamKey(model.Key), Group, consumer, 0, leases), ct).ConfigureAwait(false);
        }
        foreach (var job in jobs)
        {
            // The preview wish comes in the same call as the state: asking nobody costs nothing extra.
            var fields = await Call(db => db.HashGetAsync(JobKey(job.Id), ["state", "preview_every"]), ct).ConfigureAwait(false);
            if (fields[0] != "running" && fields[0] != "queued")
            {
                canceled.Add(job.Id);
            }
            if (fields[1].HasValue && (int)fields[1] > 0)
            {
                previews[job.Id] = (int)fields[1];
            }
        }
        return new HeartbeatResult(canceled, previews);
    }

    private const string CompleteScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[2], ARGV[2])
        if not state or state == 'succeeded' or state == 'failed' or state == 'canceled' then return 0 end
        for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 5], 'EX', ARGV[4]) end
        redis.call('HSET', KEYS[1], 'state', 'succeeded', 'finished', ARGV[3], 'images', tostring(#KEYS - 2), 'step', ARGV[7])
        redis.call('HINCRBY', KEYS[1], 'completions', 1)
        redis.call('EXPIRE', KEYS[1], ARGV[4])
        redis.call('PUBLISH', ARGV[6], 'succeeded')
        return 1
        """;

    public async Task<bool> CompleteAsync(LeasedJob job, IReadOnlyList<GeneratedImage> images, CancellationToken ct = default)
    {
        // 'completions' on the job hash counts stored results (the script refuses a second one): it expires with the job.
        var keys = new List<RedisKey> { JobKey(job.Id), StreamKey(job.Job.Spec.Model) };
        keys.AddRange(images.Select((_, k) => ImageKey(job.Id, k)));
        var args = new List<RedisValue>
        {
            Group, job.Lease, NowMs(), Seconds(_options.ResultTtl), job.Id, Prefix + "ev:" + job.Id, job.Job.Spec.Steps,
        };
        args.AddRange(images.Select(i => (RedisValue)ImageBlob.Encode(i)));
        var done = (long)await Call(db => db.ScriptEvaluateAsync(CompleteScript, [.. keys], [.. args]), ct).ConfigureAwait(false);
        await RefreshDepthAsync(job.Job.Spec.Model).ConfigureAwait(false);
        return done == 1;
    }

    private const string FailScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[2], ARGV[2])
        if not state or state == 'succeeded' or state == 'failed' or state == 'canceled' then return 0 end
        local deliveries = tonumber(redis.call('HGET', KEYS[1], 'deliveries') or '0')
        if deliveries < tonumber(ARGV[6]) then
          local entry = redis.call('XADD', KEYS[2], '*', 'id', ARGV[8])
          redis.call('HSET', KEYS[1], 'state', 'queued', 'step', '0', 'entry', entry, 'error', ARGV[3])
          redis.call('PUBLISH', ARGV[7], 'queued')
          redis.call('PUBLISH', ARGV[10], '1')
          return 1
        end
        redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', ARGV[4], 'error', ARGV[3])
        redis.call('EXPIRE', KEYS[1], ARGV[5])
        redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'id', ARGV[8], 'error', ARGV[3], 'deliveries', tostring(deliveries))
        redis.call('PUBLISH', ARGV[7], 'failed')
        return 2
        """;

    public Task FailAsync(LeasedJob job, string error, CancellationToken ct = default) =>
        FailCoreAsync(job, error, _options.MaxDeliveries, ct);

    private async Task FailCoreAsync(LeasedJob job, string error, int maxDeliveries, CancellationToken ct)
    {
        var outcome = (long)await Call(db => db.ScriptEvaluateAsync(FailScript,
            [JobKey(job.Id), StreamKey(job.Job.Spec.Model), DeadLetterKey],
            [Group, job.Lease, error, NowMs(), Seconds(_options.ResultTtl), maxDeliveries, Prefix + "ev:" + job.Id, job.Id, _options.DeadLetterMaxLength, WakeChannel(job.Job.Spec.Model)]),
            ct).ConfigureAwait(false);
        if (outcome == 2)
        {
            _logger.LogError("Job {JobId} failed for good and went to the dead-letter stream: {Error}", job.Id, error);
        }
    }

    private const string ReleaseScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[2], ARGV[2])
        if state ~= 'queued' and state ~= 'running' then return 0 end
        local entry = redis.call('XADD', KEYS[2], '*', 'id', ARGV[3])
        redis.call('HSET', KEYS[1], 'state', 'queued', 'step', '0', 'entry', entry)
        redis.call('PUBLISH', ARGV[4], 'queued')
        redis.call('PUBLISH', ARGV[5], '1')
        return 1
        """;

    public Task ReleaseAsync(LeasedJob job, CancellationToken ct = default) =>
        Call(db => db.ScriptEvaluateAsync(ReleaseScript, [JobKey(job.Id), StreamKey(job.Job.Spec.Model)],
            [Group, job.Lease, job.Id, Prefix + "ev:" + job.Id, WakeChannel(job.Job.Spec.Model)]), ct);

    public Task AcknowledgeAsync(LeasedJob job, CancellationToken ct = default) =>
        Call(db => AckAsync(db, StreamKey(job.Job.Spec.Model), job.Lease), ct);

    private async Task EnsureGroupAsync(string model, CancellationToken ct)
    {
        if (_groups.ContainsKey(model))
        {
            return;
        }
        try
        {
            // From "0-0" so jobs queued before the first worker started are delivered too.
            await Call(db => db.StreamCreateConsumerGroupAsync(StreamKey(model), Group, "0-0", createStream: true), ct).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
        {
        }
        _groups[model] = true;
    }

    private JobRecord? ToRecord(string id, HashEntry[] fields)
    {
        if (fields.Length == 0)
        {
            return null;
        }
        var f = fields.ToDictionary(e => (string)e.Name!, e => e.Value);
        if (!f.TryGetValue("spec", out var specJson) || JsonSerializer.Deserialize<JobSpec>((string)specJson!, Json) is not { } spec)
        {
            return null;
        }
        static DateTimeOffset? Time(Dictionary<string, RedisValue> f, string name) =>
            f.TryGetValue(name, out var v) && v.HasValue ? DateTimeOffset.FromUnixTimeMilliseconds((long)v) : null;
        static int Int(Dictionary<string, RedisValue> f, string name) =>
            f.TryGetValue(name, out var v) && v.HasValue ? (int)v : 0;
        var state = Enum.Parse<JobState>((string)f["state"]!, ignoreCase: true);
        return new JobRecord(
            id, spec, state, Time(f, "created") ?? DateTimeOffset.UnixEpoch, Time(f, "started"), Time(f, "finished"),
            Int(f, "step"), null, f.TryGetValue("error", out var e) && state == JobState.Failed ? (string?)e : null,
            Int(f, "images"), Int(f, "deliveries"), Int(f, "preview_step"));
    }

    /// <summary>Runs one Redis call through the resilience pipeline; unreachable Redis becomes <see cref="QueueUnavailableException"/>.</summary>
    private async Task<T> Call<T>(Func<IDatabase, Task<T>> operation, CancellationToken ct)
    {
        try
        {
            return await _pipeline.ExecuteAsync(
                static async (state, token) => await state.operation(state.db).WaitAsync(token).ConfigureAwait(false),
                (operation, db: Db), ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisResilience.IsUnavailable(ex))
        {
            throw new QueueUnavailableException($"Redis is unreachable: {ex.Message}", _options.RedisBreakDuration, ex);
        }
    }

    private async Task Call(Func<IDatabase, Task> operation, CancellationToken ct) =>
        await Call(async db => { await operation(db).ConfigureAwait(false); return true; }, ct).ConfigureAwait(false);
}
