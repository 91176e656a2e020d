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
    private readonly Histogram<double> _step;
    private readonly Histogram<int> _stepRows;
    private readonly Histogram<double> _run;
    private readonly Counter<long> _images;
    private readonly Counter<long> _failures;

    public JobMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _meter.CreateObservableGauge("rinserve.queue.depth", ObserveDepth, "{job}", "Jobs waiting or running per model.");
        _wait = _meter.CreateHistogram<double>("rinserve.job.wait", "s", "Time from enqueue to the job's first step.");
        _run = _meter.CreateHistogram<double>("rinserve.job.run", "s", "Time from a job's first step to its last.");
        _step = _meter.CreateHistogram<double>("rinserve.step.duration", "s", "Sampler time of one step (one network call over the rows of one model).");
        _stepRows = _meter.CreateHistogram<int>("rinserve.step.rows", "{image}", "Images stepped together in one network call.");
        _images = _meter.CreateCounter<long>("rinserve.images.generated", "{image}", "Images generated.");
        _failures = _meter.CreateCounter<long>("rinserve.job.failures", "{job}", "Failed job attempts.");
    }

    public void SetDepth(string model, long depth) => _depth[model] = depth;

    public void JobStarted(string model, TimeSpan waited) =>
        _wait.Record(waited.TotalSeconds, new KeyValuePair<string, object?>("model", model));

    public void StepFinished(string model, int images, TimeSpan elapsed)
    {
        var tag = new KeyValuePair<string, object?>("model", model);
        _step.Record(elapsed.TotalSeconds, tag);
        _stepRows.Record(images, tag);
    }

    public void JobFinished(string model, int images, TimeSpan ran)
    {
        var tag = new KeyValuePair<string, object?>("model", model);
        _run.Record(ran.TotalSeconds, tag);
        _images.Add(images, tag);
    }

    public void JobFailed(string model, string reason) =>
        _failures.Add(1, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("reason", reason));

    private IEnumerable<Measurement<long>> ObserveDepth() =>
        _depth.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("model", kv.Key)));

    public void Dispose() => _meter.Dispose();
}
