using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using RinServe.Diffusion;
using RinServe.Testing;

namespace RinServe.Jobs.Tests;

/// <summary>
/// The behaviour both queue backends promise. Each concrete subclass supplies a backend;
/// every test gets a fresh, isolated queue.
/// </summary>
public abstract class JobQueueContract : IAsyncDisposable
{
    private readonly List<ServiceProvider> _providers = [];

    /// <summary>Redis connection string, or null for the in-process queue.</summary>
    protected abstract string? Redis { get; }

    protected IJobQueue NewQueue(params (string Key, string Value)[] settings)
    {
        var values = new Dictionary<string, string?>
        {
            ["Jobs:KeyPrefix"] = $"t{Guid.NewGuid():N}:",
            ["Jobs:ReclaimInterval"] = "00:00:00.050",
            ["Workers:PollInterval"] = "00:00:00.010",
        };
        foreach (var (key, value) in settings)
        {
            values[key] = value;
        }
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection().AddLogging().AddJobQueue(configuration, Redis);
        var provider = services.BuildServiceProvider();
        _providers.Add(provider);
        return provider.GetRequiredService<IJobQueue>();
    }

    protected static JobSpec Spec(string model = "m", int steps = 3, long classId = 1, ulong seed = 7, int count = 1, string? owner = null) =>
        new(model, steps, "ddim", "cosine", 0f, classId, seed, count, "png", owner);

    protected static GeneratedImage Image(byte value) => new(2, 2, 1, [value, value, value, value]);

    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(200);

    protected static async Task<LeasedJob> TakeOneAsync(IJobQueue queue, string consumer = "w1", string model = "m")
    {
        var taken = await queue.TakeAsync(model, consumer, 1, TimeSpan.FromSeconds(2), TimeSpan.Zero);
        return Assert.Single(taken);
    }

    [Fact]
    public async Task Enqueued_job_is_queued_with_an_unguessable_id_and_position_one()
    {
        var queue = NewQueue();
        var result = await queue.EnqueueAsync(Spec(), null);
        Assert.Equal(EnqueueStatus.Created, result.Status);
        var job = await queue.GetAsync(result.Job!.Id);
        Assert.NotNull(job);
        Assert.Equal(JobState.Queued, job.State);
        Assert.Equal(1, job.QueuePosition);
        Assert.True(JobId.IsWellFormed(job.Id));
        Assert.Equal(Spec(), job.Spec);
    }

    [Fact]
    public async Task Queue_positions_follow_enqueue_order_and_move_up_when_jobs_are_taken()
    {
        var queue = NewQueue();
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await queue.EnqueueAsync(Spec(seed: (ulong)i), null)).Job!.Id);
        }
        Assert.Equal(3, (await queue.GetAsync(ids[2]))!.QueuePosition);
        var first = await TakeOneAsync(queue);
        Assert.Equal(ids[0], first.Id);
        Assert.Equal(1, (await queue.GetAsync(ids[1]))!.QueuePosition);
        Assert.Equal(2, (await queue.GetAsync(ids[2]))!.QueuePosition);
    }

    [Fact]
    public async Task Take_returns_at_most_max_jobs_in_order_and_nothing_when_empty()
    {
        var queue = NewQueue();
        Assert.Empty(await queue.TakeAsync("m", "w1", 4, Short, TimeSpan.Zero));
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await queue.EnqueueAsync(Spec(seed: (ulong)i), null)).Job!.Id);
        }
        var taken = await queue.TakeAsync("m", "w1", 4, Short, Short);
        Assert.Equal(ids.Take(4), taken.Select(t => t.Id));
        Assert.Empty(await queue.TakeAsync("other", "w1", 4, Short, TimeSpan.Zero));
    }

    [Fact]
    public async Task Completed_job_has_its_images_and_later_completions_are_refused()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec(count: 2), null)).Job!.Id;
        var lease = await TakeOneAsync(queue);
        Assert.True(await queue.MarkRunningAsync(lease));
        queue.ReportProgress(lease, 2);
        Assert.True(await queue.CompleteAsync(lease, [Image(10), Image(20)]));
        Assert.False(await queue.CompleteAsync(lease, [Image(99), Image(99)]));
        var job = (await queue.GetAsync(id))!;
        Assert.Equal(JobState.Succeeded, job.State);
        Assert.Equal(2, job.ImageCount);
        Assert.Equal(3, job.Step);
        Assert.Equal(1, job.Deliveries);
        Assert.NotNull(job.StartedAt);
        Assert.NotNull(job.FinishedAt);
        Assert.Equal(20, (await queue.GetImageAsync(id, 1))!.Pixels[0]);
        Assert.Null(await queue.GetImageAsync(id, 2));
        Assert.Equal(0, await queue.DepthAsync("m"));
    }

    [Fact]
    public async Task Canceled_queued_job_is_never_handed_to_a_worker()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var canceled = await queue.CancelAsync(id);
        Assert.Equal(JobState.Canceled, canceled!.State);
        Assert.Empty(await queue.TakeAsync("m", "w1", 4, Short, TimeSpan.Zero));
        Assert.Equal(0, await queue.DepthAsync("m"));
    }

    [Fact]
    public async Task Canceling_a_running_job_shows_in_the_heartbeat_and_its_result_is_dropped()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var lease = await TakeOneAsync(queue);
        Assert.True(await queue.MarkRunningAsync(lease));
        Assert.Empty((await queue.HeartbeatAsync("w1", [lease])).Canceled);
        await queue.CancelAsync(id);
        Assert.Contains(id, (await queue.HeartbeatAsync("w1", [lease])).Canceled);
        Assert.False(await queue.CompleteAsync(lease, [Image(1)]));
        Assert.Equal(JobState.Canceled, (await queue.GetAsync(id))!.State);
    }

    [Fact]
    public async Task Job_canceled_between_take_and_start_does_not_start()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var lease = await TakeOneAsync(queue);
        await queue.CancelAsync(id);
        Assert.False(await queue.MarkRunningAsync(lease));
    }

    [Fact]
    public async Task Full_queue_refuses_with_retry_after()
    {
        var queue = NewQueue(("Jobs:MaxQueueLength", "2"));
        await queue.EnqueueAsync(Spec(), null);
        await queue.EnqueueAsync(Spec(), null);
        var third = await queue.EnqueueAsync(Spec(), null);
        Assert.Equal(EnqueueStatus.QueueFull, third.Status);
        Assert.True(third.RetryAfter > TimeSpan.Zero);
        Assert.Equal(EnqueueStatus.Created, (await queue.EnqueueAsync(Spec(model: "other"), null)).Status);
    }

    [Fact]
    public async Task An_api_key_at_its_cap_of_unfinished_jobs_is_refused_until_one_finishes_and_other_callers_are_not()
    {
        var queue = NewQueue(("Jobs:MaxJobsPerKey", "3"), ("Jobs:MaxDeliveries", "1"));
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            // Across models: the cap is the caller's, not a queue's.
            var created = await queue.EnqueueAsync(Spec(model: i == 0 ? "m" : "other", seed: (ulong)i, owner: "a"), null);
            Assert.Equal(EnqueueStatus.Created, created.Status);
            ids.Add(created.Job!.Id);
        }
        var refused = await queue.EnqueueAsync(Spec(owner: "a"), null);
        Assert.Equal(EnqueueStatus.KeyFull, refused.Status);
        Assert.True(refused.RetryAfter > TimeSpan.Zero);
        Assert.Equal(EnqueueStatus.Created, (await queue.EnqueueAsync(Spec(owner: "b"), null)).Status);
        Assert.Equal(EnqueueStatus.Created, (await queue.EnqueueAsync(Spec(), null)).Status); // keys off: no caller to count

        // Each way of finishing frees a place: success, failure for good, cancel.
        var lease = await TakeOneAsync(queue);
        Assert.Equal(ids[0], lease.Id);
        Assert.True(await queue.MarkRunningAsync(lease));
        Assert.True(await queue.CompleteAsync(lease, [Image(1)]));
        Assert.Equal(EnqueueStatus.Created, (await queue.EnqueueAsync(Spec(model: "third", owner: "a"), null)).Status);
        Assert.Equal(EnqueueStatus.KeyFull, (await queue.EnqueueAsync(Spec(owner: "a"), null)).Status);

        var failing = await TakeOneAsync(queue, model: "other");
        Assert.True(await queue.MarkRunningAsync(failing));
        await queue.FailAsync(failing, "boom");
        Assert.Equal(JobState.Failed, (await queue.GetAsync(failing.Id))!.State);
        Assert.Equal(EnqueueStatus.Created, (await queue.EnqueueAsync(Spec(model: "third", seed: 1, owner: "a"), null)).Status);

        await queue.CancelAsync(ids[2]);
        Assert.Equal(EnqueueStatus.Created, (await queue.EnqueueAsync(Spec(model: "third", seed: 2, owner: "a"), null)).Status);
        Assert.Equal(EnqueueStatus.KeyFull, (await queue.EnqueueAsync(Spec(owner: "a"), null)).Status);
    }

    [Fact]
    public async Task A_job_with_a_webhook_puts_it_due_once_at_its_end_whatever_the_end_and_one_without_does_not()
    {
        var queue = NewQueue(("Jobs:MaxDeliveries", "1"));
        var hook = Spec() with { Webhook = "https://example.com/hook" };
        var done = (await queue.EnqueueAsync(hook with { Seed = 1 }, null)).Job!.Id;
        var failed = (await queue.EnqueueAsync(hook with { Seed = 2 }, null)).Job!.Id;
        var canceled = (await queue.EnqueueAsync(hook with { Seed = 3 }, null)).Job!.Id;
        var silent = (await queue.EnqueueAsync(Spec(seed: 4), null)).Job!.Id;
        Assert.Empty(await queue.TakeWebhooksAsync("d1", 10, TimeSpan.FromMinutes(5), TimeSpan.Zero));

        var lease = await TakeOneAsync(queue);
        Assert.True(await queue.MarkRunningAsync(lease));
        Assert.True(await queue.CompleteAsync(lease, [Image(1)]));
        Assert.False(await queue.CompleteAsync(lease, [Image(1)])); // no second end, so no second webhook
        lease = await TakeOneAsync(queue);
        Assert.True(await queue.MarkRunningAsync(lease));
        await queue.FailAsync(lease, "boom"); // for good: MaxDeliveries 1
        await queue.CancelAsync(canceled);
        await queue.CancelAsync(canceled);
        lease = await TakeOneAsync(queue);
        Assert.True(await queue.MarkRunningAsync(lease));
        Assert.True(await queue.CompleteAsync(lease, [Image(1)]));

        var due = new List<WebhookDue>();
        while (due.Count < 3 && (await queue.TakeWebhooksAsync("d1", 10, TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(5))) is { Count: > 0 } more)
        {
            due.AddRange(more);
        }
        Assert.Equal(new[] { done, failed, canceled }.Order(), due.Select(d => d.JobId).Order());
        Assert.DoesNotContain(silent, due.Select(d => d.JobId));
        foreach (var d in due)
        {
            await queue.AcknowledgeWebhookAsync(d);
        }
        Assert.Empty(await queue.TakeWebhooksAsync("d1", 10, TimeSpan.FromMinutes(5), TimeSpan.FromMilliseconds(200)));
    }

    [Fact]
    public async Task An_idle_wait_on_several_models_ends_when_any_of_them_gets_a_job()
    {
        // Poll interval and wait far longer than the test: only the enqueue can end the wait in time.
        var queue = NewQueue(("Workers:PollInterval", "00:00:10"));
        string[] models = ["a", "b", "c"];
        foreach (var model in models)
        {
            Assert.Empty(await queue.TakeAsync(model, "w1", 1, TimeSpan.Zero, TimeSpan.Zero)); // looked at: nothing there
        }
        var waiting = queue.WaitForWorkAsync(models, TimeSpan.FromMinutes(5));
        Assert.False(waiting.IsCompleted);
        var id = (await queue.EnqueueAsync(Spec(model: "b"), null)).Job!.Id;
        await waiting.WaitAsync(TimeSpan.FromSeconds(9));
        Assert.Equal(id, Assert.Single(await queue.TakeAsync("b", "w1", 1, TimeSpan.Zero, TimeSpan.Zero)).Id);
    }

    [Fact]
    public async Task Idempotency_key_returns_the_same_job_and_conflicts_on_other_parameters()
    {
        var queue = NewQueue();
        var first = await queue.EnqueueAsync(Spec(), new IdempotencyClaim("k1", "f1"));
        var again = await queue.EnqueueAsync(Spec(), new IdempotencyClaim("k1", "f1"));
        Assert.Equal(EnqueueStatus.Existing, again.Status);
        Assert.Equal(first.Job!.Id, again.Job!.Id);
        var other = await queue.EnqueueAsync(Spec(seed: 9), new IdempotencyClaim("k1", "f2"));
        Assert.Equal(EnqueueStatus.IdempotencyConflict, other.Status);
        // Keys are per API key owner.
        var otherOwner = await queue.EnqueueAsync(Spec(owner: "someone"), new IdempotencyClaim("k1", "f1"));
        Assert.Equal(EnqueueStatus.Created, otherOwner.Status);
    }

    [Fact]
    public async Task Failed_attempts_are_retried_until_max_deliveries_then_the_job_fails()
    {
        var queue = NewQueue(("Jobs:MaxDeliveries", "2"));
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            var lease = await TakeOneAsync(queue);
            Assert.True(await queue.MarkRunningAsync(lease));
            await queue.FailAsync(lease, "boom");
        }
        var job = (await queue.GetAsync(id))!;
        Assert.Equal(JobState.Failed, job.State);
        Assert.Equal("boom", job.Error);
        Assert.Equal(2, job.Deliveries);
        Assert.Empty(await queue.TakeAsync("m", "w1", 1, Short, TimeSpan.Zero));
    }

    [Fact]
    public async Task Released_job_goes_back_to_the_queue()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var lease = await TakeOneAsync(queue);
        await queue.ReleaseAsync(lease);
        Assert.Equal(JobState.Queued, (await queue.GetAsync(id))!.State);
        var again = await TakeOneAsync(queue, "w2");
        Assert.Equal(id, again.Id);
    }

    [Fact]
    public async Task Previews_are_made_only_when_asked_for_and_reach_the_job_and_its_watchers()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec(steps: 20), null)).Job!.Id;
        var lease = await TakeOneAsync(queue);
        Assert.True(await queue.MarkRunningAsync(lease));
        Assert.Empty((await queue.HeartbeatAsync("w1", [lease])).PreviewEvery);

        Assert.True(await queue.RequestPreviewsAsync(id, 5));
        Assert.True(await queue.RequestPreviewsAsync(id, 10));
        var beat = await queue.HeartbeatAsync("w1", [lease]);
        Assert.Empty(beat.Canceled);
        Assert.Equal(5, beat.PreviewEvery[id]);

        queue.ReportProgress(lease, 4);
        Assert.Equal((4, 0), ((await queue.GetAsync(id))!.Step, (await queue.GetAsync(id))!.PreviewStep));
        Assert.Null(await queue.GetPreviewAsync(id));
        queue.ReportProgress(lease, 5, Image(42));
        queue.ReportProgress(lease, 6);
        var job = (await queue.GetAsync(id))!;
        Assert.Equal((6, 5), (job.Step, job.PreviewStep));
        var preview = (await queue.GetPreviewAsync(id))!;
        Assert.Equal(5, preview.Step);
        Assert.Equal(Image(42).Pixels, preview.Image.Pixels);

        Assert.True(await queue.CompleteAsync(lease, [Image(1)]));
        Assert.False(await queue.RequestPreviewsAsync(id, 5));
        Assert.False(await queue.RequestPreviewsAsync(JobId.New(), 5));
    }

    [Fact]
    public async Task Watch_gives_the_current_state_first_then_changes_until_terminal()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var seen = new List<JobRecord>();
        var records = System.Threading.Channels.Channel.CreateUnbounded<JobRecord>();
        var watching = Task.Run(async () =>
        {
            await foreach (var record in queue.WatchAsync(id))
            {
                seen.Add(record);
                records.Writer.TryWrite(record);
            }
        });
        // Each change is made once the watcher has shown the one before (events, not sleeps).
        async Task SeenAsync(Func<JobRecord, bool> match)
        {
            while (!match(await records.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10))))
            {
            }
        }
        await SeenAsync(r => r.State == JobState.Queued);
        var lease = await TakeOneAsync(queue);
        Assert.True(await queue.MarkRunningAsync(lease));
        await SeenAsync(r => r.State == JobState.Running);
        queue.ReportProgress(lease, 1);
        await SeenAsync(r => r.Step == 1);
        await queue.CompleteAsync(lease, [Image(1)]);
        await watching.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(JobState.Queued, seen[0].State);
        Assert.Contains(seen, r => r.State == JobState.Running);
        Assert.Equal(JobState.Succeeded, seen[^1].State);

        // A late subscriber gets the final state at once.
        var late = new List<JobRecord>();
        await foreach (var record in queue.WatchAsync(id))
        {
            late.Add(record);
        }
        Assert.Equal(JobState.Succeeded, Assert.Single(late).State);
    }

    [Fact]
    public async Task Unknown_jobs_are_absent_everywhere()
    {
        var queue = NewQueue();
        var id = JobId.New();
        Assert.Null(await queue.GetAsync(id));
        Assert.Null(await queue.CancelAsync(id));
        Assert.Null(await queue.GetImageAsync(id, 0));
        await foreach (var _ in queue.WatchAsync(id))
        {
            Assert.Fail("an unknown job has no events");
        }
    }

    [Fact]
    public async Task Finished_jobs_expire_after_the_result_ttl()
    {
        var queue = NewQueue(("Jobs:ResultTtl", "00:00:01"));
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var lease = await TakeOneAsync(queue);
        await queue.MarkRunningAsync(lease);
        await queue.CompleteAsync(lease, [Image(1)]);
        Assert.NotNull(await queue.GetAsync(id));
        // Expiry is the event: looked for until it happens (a 1 s TTL), within a generous bound for slow machines.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await queue.GetAsync(id) is not null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        Assert.Null(await queue.GetAsync(id));
        Assert.Null(await queue.GetImageAsync(id, 0));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var provider in _providers)
        {
            await provider.DisposeAsync();
        }
        GC.SuppressFinalize(this);
    }
}

public sealed class InProcessJobQueueTests : JobQueueContract
{
    protected override string? Redis => null;
}

public sealed class RedisJobQueueTests(RedisFixture redis) : JobQueueContract, IClassFixture<RedisFixture>
{
    protected override string? Redis => redis.Server.ConnectionString;

    /// <summary>
    /// Takes jobs as a worker would until one comes: a held job is reclaimed once Redis's own clock says its entry was idle
    /// past the visibility timeout, which takes as long as it takes on this machine. An event, with a generous deadline.
    /// </summary>
    private static async Task<LeasedJob> TakeWhenReclaimedAsync(IJobQueue queue, string consumer)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if ((await queue.TakeAsync("m", consumer, 1, TimeSpan.FromMilliseconds(100), TimeSpan.Zero)).SingleOrDefault() is { } job)
            {
                return job;
            }
        }
        throw new TimeoutException("the job was never reclaimed");
    }

    [Fact]
    public async Task Job_of_a_worker_that_stopped_heartbeating_is_reclaimed_by_another()
    {
        var queue = NewQueue(("Jobs:VisibilityTimeout", "00:00:01"));
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var lease = await TakeOneAsync(queue, "dead-worker");
        Assert.True(await queue.MarkRunningAsync(lease));
        Assert.Empty(await queue.TakeAsync("m", "w2", 1, TimeSpan.Zero, TimeSpan.Zero)); // held, and not yet idle for a second
        var reclaimed = await TakeWhenReclaimedAsync(queue, "w2");
        Assert.Equal(id, reclaimed.Id);
        Assert.True(await queue.MarkRunningAsync(reclaimed));
        Assert.True(await queue.CompleteAsync(reclaimed, [Image(5)]));
        // The dead worker wakes up late: its completion must not count twice.
        Assert.False(await queue.CompleteAsync(lease, [Image(6)]));
        var job = (await queue.GetAsync(id))!;
        Assert.Equal(2, job.Deliveries);
        Assert.Equal(5, (await queue.GetImageAsync(id, 0))!.Pixels[0]);
    }

    [Fact]
    public async Task A_webhook_held_by_a_process_that_died_is_handed_out_again_after_the_reclaim_time()
    {
        var queue = NewQueue();
        var id = (await queue.EnqueueAsync(Spec() with { Webhook = "https://example.com/hook" }, null)).Job!.Id;
        await queue.CancelAsync(id);
        var first = Assert.Single(await queue.TakeWebhooksAsync("dead", 10, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5)));
        Assert.Equal(id, first.JobId);
        // "dead" never acknowledges it; "alive" gets it once Redis's clock says it was idle a second.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        IReadOnlyList<WebhookDue> again;
        while ((again = await queue.TakeWebhooksAsync("alive", 10, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(200))).Count == 0
               && DateTime.UtcNow < deadline)
        {
        }
        Assert.Equal(id, Assert.Single(again).JobId);
        await queue.AcknowledgeWebhookAsync(again[0]);
    }

    [Fact]
    public async Task Completions_are_counted_on_the_job_and_expire_with_it_not_in_an_ever_growing_list()
    {
        var prefix = $"c{Guid.NewGuid():N}:";
        var queue = NewQueue(("Jobs:KeyPrefix", prefix), ("Jobs:ResultTtl", "00:00:30"));
        for (var i = 0; i < 3; i++)
        {
            var id = (await queue.EnqueueAsync(Spec(seed: (ulong)i), null)).Job!.Id;
            var lease = await TakeOneAsync(queue);
            Assert.True(await queue.MarkRunningAsync(lease));
            Assert.True(await queue.CompleteAsync(lease, [Image(1)]));
            Assert.False(await queue.CompleteAsync(lease, [Image(2)]));
            await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(Redis!);
            var db = connection.GetDatabase();
            Assert.Equal(1, (int)await db.HashGetAsync(prefix + "job:" + id, "completions"));
            var ttl = await db.KeyTimeToLiveAsync(prefix + "job:" + id);
            Assert.True(ttl is { } t && t <= TimeSpan.FromSeconds(30), $"job hash TTL {ttl}");
            // No shared list of completions that every result appends to and keeps alive.
            Assert.False(await db.KeyExistsAsync(prefix + "completions"));
        }
    }

    [Fact]
    public async Task Heartbeat_keeps_a_slow_job_from_being_reclaimed()
    {
        // Gated on Redis's own idle clock of the entry, not on sleeps: the heartbeat must set it back to zero.
        var prefix = $"h{Guid.NewGuid():N}:";
        var queue = NewQueue(("Jobs:KeyPrefix", prefix), ("Jobs:VisibilityTimeout", "00:00:02"));
        await queue.EnqueueAsync(Spec(), null);
        var lease = await TakeOneAsync(queue, "slow-worker");
        await queue.MarkRunningAsync(lease);
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(Redis!);
        var db = connection.GetDatabase();
        async Task<long> IdleMs() =>
            (await db.StreamPendingMessagesAsync(prefix + "q:m", "workers", 1, "slow-worker")).Single().IdleTimeInMilliseconds;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (await IdleMs() < 1000 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        var before = await IdleMs();
        Assert.True(before >= 1000, $"idle {before} ms");
        await queue.HeartbeatAsync("slow-worker", [lease]);
        Assert.True(await IdleMs() < before, "the heartbeat did not reset the entry's idle time");
        Assert.Empty(await queue.TakeAsync("m", "w2", 1, TimeSpan.Zero, TimeSpan.Zero));
    }

    [Fact]
    public async Task Job_that_keeps_killing_workers_goes_to_the_dead_letter_stream()
    {
        var queue = NewQueue(("Jobs:VisibilityTimeout", "00:00:00.100"), ("Jobs:MaxDeliveries", "2"));
        var id = (await queue.EnqueueAsync(Spec(), null)).Job!.Id;
        var first = await TakeOneAsync(queue, "w1");
        await queue.MarkRunningAsync(first);
        var second = await TakeWhenReclaimedAsync(queue, "w2"); // w1 "died"
        Assert.Equal(id, second.Id);
        await queue.MarkRunningAsync(second);
        // w2 dies too: at the next reclaim the job has had its two deliveries and fails for good instead of a third.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        JobRecord job;
        while ((job = (await queue.GetAsync(id))!).State != JobState.Failed && DateTime.UtcNow < deadline)
        {
            Assert.Empty(await queue.TakeAsync("m", "w3", 1, TimeSpan.FromMilliseconds(100), TimeSpan.Zero));
        }
        Assert.Equal(JobState.Failed, job.State);
        Assert.Contains("deliveries", job.Error);
    }
}
