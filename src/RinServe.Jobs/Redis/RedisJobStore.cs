using System.Text.Json;
using RinServe.Diffusion;
using StackExchange.Redis;

namespace RinServe.Jobs;

/// <summary>
/// Reads jobs, images and previews from Redis: a hash per job (<see cref="RedisKeys.Job"/>), one key per image, a
/// hash per preview. The writes are the scripts of <see cref="RedisScripts"/>.
/// </summary>
internal sealed class RedisJobStore(RedisCalls calls, RedisKeys keys, RedisQueueStats stats)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The job with its queue position, or null when unknown or expired.</summary>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken ct)
    {
        var (record, entry) = await ReadAsync(id, ct).ConfigureAwait(false);
        if (record is null || record.State != JobState.Queued)
        {
            return record;
        }
        return record with { QueuePosition = await stats.PositionAsync(record.Spec.Model, entry, ct).ConfigureAwait(false) };
    }

    /// <summary>The job without its queue position, and the id of its current stream entry.</summary>
    public async Task<(JobRecord? Job, RedisValue Entry)> ReadAsync(string id, CancellationToken ct)
    {
        var fields = await calls.RunAsync(db => db.HashGetAllAsync(keys.Job(id)), ct).ConfigureAwait(false);
        return (ToRecord(id, fields), fields.FirstOrDefault(f => f.Name == "entry").Value);
    }

    public async Task<GeneratedImage?> GetImageAsync(string id, int index, CancellationToken ct)
    {
        if (index < 0)
        {
            return null;
        }
        var blob = await calls.RunAsync(db => db.StringGetAsync(keys.Image(id, index)), ct).ConfigureAwait(false);
        return ImageBlob.Decode(blob);
    }

    public async Task<JobPreview?> GetPreviewAsync(string id, CancellationToken ct)
    {
        var fields = await calls.RunAsync(db => db.HashGetAsync(keys.Preview(id), ["step", "image"]), ct).ConfigureAwait(false);
        return fields[0].HasValue && ImageBlob.Decode(fields[1]) is { } image ? new JobPreview((int)fields[0], image) : null;
    }

    private static JobRecord? ToRecord(string id, HashEntry[] fields)
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
        DateTimeOffset? Time(string name) =>
            f.TryGetValue(name, out var v) && v.HasValue ? DateTimeOffset.FromUnixTimeMilliseconds((long)v) : null;
        int Int(string name) =>
            f.TryGetValue(name, out var v) && v.HasValue ? (int)v : 0;
        var state = Enum.Parse<JobState>((string)f["state"]!, ignoreCase: true);
        return new JobRecord(
            id, spec, state, Time("created") ?? DateTimeOffset.UnixEpoch, Time("started"), Time("finished"),
            Int("step"), null, f.TryGetValue("error", out var e) && state == JobState.Failed ? (string?)e : null,
            Int("images"), Int("deliveries"), Int("preview_step"));
    }
}
