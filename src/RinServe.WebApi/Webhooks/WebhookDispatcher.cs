using System.Text.Json;
using Microsoft.Extensions.Options;
using RinServe.Jobs;
using RinServe.Onnx;

namespace RinServe.WebApi.Webhooks;

/// <summary>
/// Delivers the webhooks due (<see cref="IJobQueue.TakeWebhooksAsync"/>): for each job that ended, POSTs
/// <c>{"type": "job.succeeded" | "job.failed" | "job.canceled", "timestamp", "data": the job document}</c> to its URL,
/// signed (<see cref="WebhookSigner"/>), with retries (<see cref="WebhookSender"/>), then acknowledges it. Every process
/// with a queue runs one; with Redis they share the deliveries, and a delivery held by a process that died is taken
/// over after <c>Webhooks:ReclaimAfter</c>, under the same <c>webhook-id</c> (the job and its end), by which a receiver
/// drops repeats. In process, deliveries due live as long as the process, like its jobs.
/// </summary>
public sealed class WebhookDispatcher(
    IJobQueue queue,
    WebhookSender sender,
    ModelRegistry registry,
    TimeProvider time,
    IOptions<WebhooksOptions> options,
    ILogger<WebhookDispatcher> logger) : BackgroundService
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly WebhooksOptions _options = options.Value;
    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{JobId.New()[..6]}";

    /// <summary>The id of a job's webhook: the same for every attempt and every process that sends it.</summary>
    public static string MessageId(JobRecord job) => $"job_{job.Id}_{job.State.ToString().ToLowerInvariant()}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var slots = new SemaphoreSlim(_options.Concurrency);
        var running = new List<Task>();
        while (!stoppingToken.IsCancellationRequested)
        {
            IReadOnlyList<WebhookDue> due;
            try
            {
                await slots.WaitAsync(stoppingToken); // take nothing while every slot delivers
                slots.Release();
                due = await queue.TakeWebhooksAsync(_consumer, Math.Max(1, slots.CurrentCount), _options.ReclaimAfter, TimeSpan.FromSeconds(1), stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Taking webhooks due failed; trying again shortly");
                await Task.Delay(TimeSpan.FromSeconds(1), time, CancellationToken.None);
                continue;
            }
            foreach (var item in due)
            {
                await slots.WaitAsync(CancellationToken.None);
                running.Add(Task.Run(async () =>
                {
                    try
                    {
                        await DeliverAsync(item, stoppingToken);
                    }
                    finally
                    {
                        slots.Release();
                    }
                }, CancellationToken.None));
            }
            running.RemoveAll(t => t.IsCompleted);
        }
        await Task.WhenAll(running);
    }

    private async Task DeliverAsync(WebhookDue due, CancellationToken stoppingToken)
    {
        try
        {
            var job = await queue.GetAsync(due.JobId, stoppingToken);
            if (job is not { IsTerminal: true, Spec.Webhook: { } url })
            {
                logger.LogWarning("Webhook of job {JobId} dropped: the job expired or has no webhook", due.JobId);
                await queue.AcknowledgeWebhookAsync(due, stoppingToken);
                return;
            }
            var id = MessageId(job);
            var body = JsonSerializer.SerializeToUtf8Bytes(new
            {
                type = "job." + job.State.ToString().ToLowerInvariant(),
                timestamp = (job.FinishedAt ?? time.GetUtcNow()).ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                data = JobDocument.From(job, registry, time),
            }, Json);
            var outcome = await sender.DeliverAsync(new Uri(url), id, body, stoppingToken);
            logger.Log(outcome == WebhookOutcome.Delivered ? LogLevel.Information : LogLevel.Warning,
                "Webhook {WebhookId} of job {JobId}: {Outcome}", id, job.Id, outcome);
            await queue.AcknowledgeWebhookAsync(due, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping mid-delivery: not acknowledged, so (with Redis) another process takes it over.
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Webhook of job {JobId} not delivered now; it stays due", due.JobId);
        }
    }
}
