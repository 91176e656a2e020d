using System.Runtime.CompilerServices;

namespace RinServe.Jobs;

public static class AsyncEnumerables
{
    /// <summary>
    /// The items of <paramref name="source"/> until it ends or <paramref name="stop"/> is canceled; then it ends
    /// quietly instead of throwing, so a stream being written (SSE) closes cleanly.
    /// </summary>
    public static async IAsyncEnumerable<T> EndWhen<T>(
        this IAsyncEnumerable<T> source, CancellationToken stop, [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, stop);
        await using var items = source.WithCancellation(linked.Token).GetAsyncEnumerator();
        while (true)
        {
            bool more;
            try
            {
                more = await items.MoveNextAsync();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                yield break;
            }
            if (!more)
            {
                yield break;
            }
            yield return items.Current;
        }
    }
}
