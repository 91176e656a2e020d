using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

public class ScheduleTests
{
    private static readonly double[] Times = [0.0, 1e-3, 0.05, 0.1, 0.25, 1.0 / 3, 0.5, 0.6, 0.75, 0.9, 0.999, 1.0];

    [Fact]
    public void Cosine_default_matches_contract_formula_value_by_value()
    {
        var schedule = Schedules.Parse("cosine");
        foreach (var t in Times)
        {
            var expected = Math.Pow(Math.Cos((t + 0.0002) / 1.00025 * Math.PI / 2), 2);
            Assert.Equal(expected, schedule.Gamma(t), 15);
        }

        Assert.True(schedule.Gamma(0) > 0.9999999);
        Assert.True(schedule.Gamma(1) < 1e-6);
    }

    [Fact]
    public void Linear_matches_contract_formula_and_clips_at_1e9()
    {
        var schedule = Schedules.Parse("linear");
        foreach (var t in Times)
        {
            Assert.Equal(Math.Clamp(1 - t, 1e-9, 1), schedule.Gamma(t), 15);
        }

        Assert.Equal(1e-9, schedule.Gamma(1));
    }

    [Theory]
    [InlineData(0.2, 1.0, 1.0)]
    [InlineData(0.0, 1.0, 1.0)]
    [InlineData(0.2, 1.0, 2.0)]
    [InlineData(0.0, 0.9, 0.5)]
    public void Cosine_window_matches_contract_formula_value_by_value(double s, double e, double tau)
    {
        var schedule = Schedules.Parse(FormattableString.Invariant($"cosine@{s},{e},{tau}"));
        double V(double u) => Math.Pow(Math.Cos(u * Math.PI / 2), 2 * tau);
        foreach (var t in Times)
        {
            var expected = Math.Clamp((V(t * (e - s) + s) - V(e)) / (V(s) - V(e)), 1e-9, 1);
            Assert.Equal(expected, schedule.Gamma(t), 14);
        }

        Assert.Equal(1.0, schedule.Gamma(0), 12);
        Assert.Equal(1e-9, schedule.Gamma(1), 15);
    }

    [Theory]
    [InlineData(-3.0, 3.0, 0.9)]
    [InlineData(0.0, 3.0, 1.1)]
    [InlineData(-3.0, 3.0, 1.1)]
    public void Sigmoid_matches_contract_formula_value_by_value(double s, double e, double tau)
    {
        var schedule = Schedules.Parse(FormattableString.Invariant($"sigmoid@{s},{e},{tau}"));
        double V(double u) => 1 / (1 + Math.Exp(-u / tau));
        foreach (var t in Times)
        {
            var expected = Math.Clamp((V(e) - V(t * (e - s) + s)) / (V(e) - V(s)), 1e-9, 1);
            Assert.Equal(expected, schedule.Gamma(t), 14);
        }
    }

    [Theory]
    [InlineData("cosine", "cosine")]
    [InlineData(" Linear ", "linear")]
    [InlineData("cosine@0.2,1,1", "cosine@0.2,1,1")]
    [InlineData("sigmoid@-3,3,0.9", "sigmoid@-3,3,0.9")]
    [InlineData("sigmoid@-3, 3, 1.1", "sigmoid@-3,3,1.1")]
    [InlineData("sigmoid@0,3,1e0", "sigmoid@0,3,1")]
    public void Parser_accepts_contract_schedules_and_canonicalizes(string text, string canonical)
    {
        Assert.True(Schedules.TryParse(text, out var schedule, out var error));
        Assert.Null(error);
        Assert.Equal(canonical, schedule!.Text);
    }

    [Theory]
    [InlineData("")]
    [InlineData("quadratic")]
    [InlineData("cosine@")]
    [InlineData("cosine@0.2,1")]
    [InlineData("cosine@0.2,1,1,4")]
    [InlineData("sigmoid@3,-3,1")]
    [InlineData("sigmoid@1,1,1")]
    [InlineData("sigmoid@-3,3,0")]
    [InlineData("sigmoid@-3,3,-1")]
    [InlineData("sigmoid@-3,3,NaN")]
    [InlineData("sigmoid@-3,Infinity,1")]
    [InlineData("sigmoid@a,3,1")]
    [InlineData("cosine@-1,1,1")]
    [InlineData("cosine@0,1.5,0.7")]
    [InlineData("linear@0,1,1")]
    [InlineData("cosine@0,256.5,0.25")] // cos(u·π/2) < 0 between the probe points: γ NaN there
    [InlineData("cosine@-0.5,0.5,1")]
    [InlineData("cosine@0,1,1e-308")] // v(s) = v(e) = 1 in float64: γ = 0/0
    [InlineData("sigmoid@1,2,1e-308")] // v(s) = v(e) = 1: γ = 0/0
    public void Parser_rejects_bad_schedules_and_says_what_is_allowed(string text)
    {
        Assert.False(Schedules.TryParse(text, out var schedule, out var error));
        Assert.Null(schedule);
        Assert.Contains("allowed schedules", error);
        var thrown = Assert.Throws<FormatException>(() => Schedules.Parse(text));
        Assert.Equal(error, thrown.Message);
    }

    [Theory]
    [InlineData("sigmoid@-3,3,1e-308", 3)]
    [InlineData("sigmoid@-3,3,0.01", 50)]
    [InlineData("cosine@0,1,1e-17", 10)]
    public void Steps_check_rejects_a_schedule_that_stays_at_gamma_1_past_the_first_step(string text, int steps)
    {
        Assert.True(Schedules.TryParse(text, out var schedule, out _));
        Assert.False(Schedules.TryCheckSteps(schedule!, steps, out var error));
        Assert.Contains("γ = 1", error);
    }

    [Theory]
    [InlineData("cosine")]
    [InlineData("linear")]
    [InlineData("cosine@0,1,1")]
    [InlineData("cosine@0.2,1,2")]
    [InlineData("sigmoid@-3,3,0.9")]
    [InlineData("sigmoid@0,3,1.1")]
    public void Steps_check_accepts_the_usual_schedules_up_to_100000_steps(string text)
    {
        var schedule = Schedules.Parse(text);
        foreach (var steps in new[] { 1, 2, 50, 1000, 100_000 })
        {
            Assert.True(Schedules.TryCheckSteps(schedule, steps, out var error), error);
        }
    }

    [Fact]
    public void Every_schedule_decreases_from_clean_to_noise()
    {
        foreach (var text in new[] { "cosine", "linear", "cosine@0.2,1,1", "sigmoid@-3,3,0.9", "sigmoid@0,3,1.1" })
        {
            var schedule = Schedules.Parse(text);
            var previous = double.PositiveInfinity;
            for (var i = 0; i <= 100; i++)
            {
                var gamma = schedule.Gamma(i / 100.0);
                Assert.InRange(gamma, 1e-9, 1);
                Assert.True(gamma <= previous, $"{text} rises at t={i / 100.0}");
                previous = gamma;
            }
        }
    }
}
