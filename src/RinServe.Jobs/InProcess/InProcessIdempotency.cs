namespace RinServe.Jobs;

/// <summary>The Idempotency-Keys the <see cref="InProcessJobQueue"/> has seen, per owner, until they expire; not thread-safe.</summary>
internal sealed class InProcessIdempotency
{
    private readonly Dictionary<string, (string Id, string Fingerprint, DateTimeOffset Expires)> _seen = new(StringComparer.Ordinal);

    private static string Key(string? owner, IdempotencyClaim claim) => $"{owner}\n{claim.Key}";

    /// <summary>The job an earlier use of the key made, and the fingerprint it was made with.</summary>
    public bool TryGet(string? owner, IdempotencyClaim claim, out string id, out string fingerprint)
    {
        var found = _seen.TryGetValue(Key(owner, claim), out var seen);
        (id, fingerprint) = (seen.Id, seen.Fingerprint);
        return found;
    }

    public void Remember(string? owner, IdempotencyClaim claim, string id, DateTimeOffset expires) =>
        _seen[Key(owner, claim)] = (id, claim.Fingerprint, expires);

    public void Sweep(DateTimeOffset now)
    {
        foreach (var (key, seen) in _seen)
        {
            if (seen.Expires <= now)
            {
                _seen.Remove(key);
            }
        }
    }
}
