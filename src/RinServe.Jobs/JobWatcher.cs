using System.Runtime.CompilerServices;

namespace RinServe.Jobs;

/// <summary>The watch loop of <see cref="IJobQueue.WatchAsync"/>, one for both backends.</summary>
internal static class JobWatcher
{
    /// <summary>Queue positions move without an event of the job, so a watcher looks again at least this often.</summary>
    public static readonly TimeSpan Relook = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The current state first, then every change, ending after a terminal state, or at once when the job is unknown.
    /// </summary>
    /// <param name="read">Reads the job (null: unknown or expired).</param>
    /// <param name="waitForChange">
    /// Completes at the first change of the job after the latest <paramref name="read"/> began (at once when one
    /// came meanwhile); it is canceled after <see cref="Relook"/>.
    /// </param>
    public static async IAsyncEnumerable<JobRecord> WatchAsync(
        Func<CancellationToken, Task<JobRecord?>> read,
        Func<CancellationToken, Task> waitForChange,
        TimeProvider time,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        JobRecord? last = null;
        while (true)
        {
            var current = await read(ct).ConfigureAwait(false);
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
            using var relook = new CancellationTokenSource(Relook, time);
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct, relook.Token);
            try
            {
                await waitForChange(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            ct.ThrowIfCancellationRequested();
        }
    }
}
