using System.Text.Json;
using RinServe.Jobs;

namespace RinServe.Jobs.Tests;

public class JobSpecJsonTests
{
    [Fact]
    public void A_job_stores_its_sampler_by_name_and_reads_back_the_numbers_of_jobs_queued_before_names()
    {
        var spec = new JobSpec("m", 10, "dpmpp-2m", "cosine", 1.5f, 3, 7, 1, "png", null);
        var json = JsonSerializer.Serialize(spec, RedisJobStore.Json);
        Assert.Contains("\"dpmpp-2m\"", json);
        Assert.Equal(spec, JsonSerializer.Deserialize<JobSpec>(json, RedisJobStore.Json));

        // A queue that outlives an upgrade: the sampler was an enum stored as its number (0 ddim, 1 ddpm, 2 ddpm-small).
        foreach (var (number, name) in new[] { (0, "ddim"), (1, "ddpm"), (2, "ddpm-small") })
        {
            var legacy = json.Replace("\"dpmpp-2m\"", number.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
            Assert.Equal(name, JsonSerializer.Deserialize<JobSpec>(legacy, RedisJobStore.Json)!.Sampler);
        }

        Assert.Equal("ddpm-small", JsonSerializer.Deserialize<JobSpec>(json.Replace("\"dpmpp-2m\"", "\"ddpm_small\"", StringComparison.Ordinal), RedisJobStore.Json)!.Sampler);
    }
}
