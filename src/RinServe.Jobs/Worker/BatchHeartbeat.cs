using Microsoft.Extensions.Logging;

namespace RinServe.Jobs;

/// <summary>
/// While a batch runs: renews the worker's hold on its jobs every <c>Workers:HeartbeatInterval</c> (so no other worker
/// reclaims them), passes on the previews their watchers asked for, and cancels the batch once every job in it was canceled.
/// </summary>
internal sealed class BatchHeartbeat(IJobQueue queue, string consumer, TimeSpan interval, TimeProvider time, ILogger logger)
{
    /// <summary>Beats until <paramref name="stop"/>, or until it cancels the batch through <paramref name="cancel"/>.</summary>
    public async Task RunAsync(
        IReadOnlyList<LeasedJob> running, BatchPreviews previews, CancellationTokenSource cancel, CancellationToken stop)
    {
        var canceled = new HashSet<string>(StringComparer.Ordinal);
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    var beat = await queue.HeartbeatAsync(consumer, running, stop);
                    previews.Update(beat.PreviewEvery);
                    canceled.UnionWith(beat.Canceled);
                    if (canceled.Count == running.Count)
                    {
                        await cancel.CancelAsync();
                        return;
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogWarning(ex, "Heartbeat failed");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
