using System.Collections.Concurrent;
using System.Threading.Channels;

namespace RinServe.Jobs;

/// <summary>The order of the <see cref="InProcessJobQueue"/>: one unbounded Channel of job ids per model, read a batch at a time.</summary>
internal sealed class InProcessModelQueues
{
    private readonly ConcurrentDictionary<string, Channel<string>> _queues = new(StringComparer.Ordinal);

    public void Add(string model, string id) => Of(model).Writer.TryWrite(id);

    /// <summary>
    /// Up to <paramref name="max"/> jobs of a model: waits up to <paramref name="firstWait"/> for the first, then up to
    /// <paramref name="batchDelay"/> for more. <paramref name="claim"/> takes a job by id, or skips it (null).
    /// </summary>
    public async Task<IReadOnlyList<LeasedJob>> TakeAsync(
        string model, int max, TimeSpan firstWait, TimeSpan batchDelay, Func<string, LeasedJob?> claim, CancellationToken ct)
    {
        var taken = new List<LeasedJob>();
        var wait = firstWait;
        while (taken.Count < max)
        {
            // Null: batch delay over, or shutting down with jobs held: return them (the worker hands them back).
            if (await NextAsync(model, wait, holding: taken.Count > 0, ct).ConfigureAwait(false) is not { } id)
            {
                break;
            }
            if (claim(id) is { } job)
            {
                taken.Add(job);
            }
            if (taken.Count == 1)
            {
                wait = batchDelay;
            }
        }
        return taken;
    }

    /// <summary>
    /// The next id of the model's queue, waiting up to <paramref name="wait"/> for one; null when the wait ends, or
    /// when <paramref name="ct"/> is canceled while the caller is <paramref name="holding"/> jobs (so it hands them back).
    /// </summary>
    private async Task<string?> NextAsync(string model, TimeSpan wait, bool holding, CancellationToken ct)
    {
        var reader = Of(model).Reader;
        string? id;
        if (wait <= TimeSpan.Zero)
        {
            return reader.TryRead(out id) ? id : null; // a look between steps: no timer, no exception
        }
        while (!reader.TryRead(out id))
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(wait);
            try
            {
                await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested || holding)
            {
                return null;
            }
        }
        return id;
    }

    /// <summary>Returns once one of the models' queues has an id, or when <paramref name="ct"/> fires.</summary>
    public async Task WaitAnyAsync(IReadOnlyList<string> models, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            await Task.WhenAny(models.Select(m => Of(m).Reader.WaitToReadAsync(stop.Token).AsTask())).ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false); // release the other models' waits
        }
    }

    private Channel<string> Of(string model) =>
        _queues.GetOrAdd(model, _ => Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false }));
}
