using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace RinServe.Jobs;

/// <summary>The service's own instruments (meter <see cref="MeterName"/>), exported to Prometheus by the host.</summary>
public sealed class JobMetrics : IDisposable
{
    public const string MeterName = "RinServe";

    private readonly Meter _meter;
    private readonly ConcurrentDictionary<string, long> _depth = new();
    private readonly Histogram<double> _wait;
    private readonly Histogram<double> _run;
    private readonly Histogram<int> _batchSize;
    private readonly Histogram<double> _stepsPerSecond;
    private readonly Counter<long> _images;
    private readonly Counter<long> _failures;

    public JobMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _meter.CreateObservableGauge("rinserve.queue.depth", ObserveDepth, "{job}", "Jobs waiting or running per model.");
        _wait = _meter.CreateHistogram<double>("rinserve.job.wait", "s", "Time from enqueue to the start of the job's batch.");
        _run = _meter.CreateHistogram<double>("rinserve.batch.run", "s", "Sampler time of one batch.");
        _batchSize = _meter.CreateHistogram<int>("rinserve.batch.size", "{image}", "Images per sampler batch.");
        _stepsPerSecond = _meter.CreateHistogram<double>("rinserve.batch.steps_per_second", "{step}/s", "Sampler steps per second of one batch.");
        _images = _meter.CreateCounter<long>("rinserve.images.generated", "{image}", "Images generated.");
        _failures = _meter.CreateCounter<long>("rinserve.job.failures", "{job}", "Failed job attempts.");
    }

    public void SetDepth(string model, long depth) => _depth[model] = depth;

    public void JobStarted(string model, TimeSpan waited) =>
        _wait.Record(waited.TotalSeconds, new KeyValuePair<string, object?>("model", model));

    public void BatchFinished(string model, int images, int steps, TimeSpan elapsed)
    {
        var tag = new KeyValuePair<string, object?>("model", model);
        _run.Record(elapsed.TotalSeconds, tag);
        _batchSize.Record(images, tag);
        _images.Add(images, tag);
        if (elapsed > TimeSpan.Zero)
        {
            _stepsPerSecond.Record(steps / elapsed.TotalSeconds, tag);
        }
    }

    public void JobFailed(string model, string reason) =>
        _failures.Add(1, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("reason", reason));

    private IEnumerable<Measurement<long>> ObserveDepth() =>
        _depth.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("model", kv.Key)));

    public void Dispose() => _meter.Dispose();
}
