using System.Globalization;
using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

/// <summary>ModelSpec.FindClass: the one reading of a class given as text, by id, name, character or code point.</summary>
public class FindClassTests
{
    private static readonly ModelSpec Fmnist = Spec("fmnist-64", ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]);

    /// <summary>The glyph models' 284 classes: printable ASCII, Latin-1 letters (no × or ÷), Latin Extended-A.</summary>
    private static readonly ModelSpec Glyph = Spec("glyph-768",
    [
        .. Enumerable.Range(0x21, 0x7E - 0x21 + 1)
            .Concat(Enumerable.Range(0xC0, 0x40).Where(c => c is not (0xD7 or 0xF7)))
            .Concat(Enumerable.Range(0x100, 0x80))
            .Select(c => string.Create(CultureInfo.InvariantCulture, $"{(char)c} (U+{c:X4})")),
    ]);

    private static ModelSpec Spec(string name, string[] classes) =>
        new(name, 8, 1, classes.Length, classes, null, Prediction.Eps, 1f, true, 2, 2);

    private static int Find(ModelSpec spec, string text)
    {
        Assert.Equal(ClassLookup.Found, spec.FindClass(text, out var id));
        return id;
    }

    [Fact]
    public void Glyph_class_list_is_the_one_the_models_declare()
    {
        Assert.Equal(284, Glyph.NumClasses);
        Assert.Equal("ĳ (U+0133)", Glyph.ClassNames[207]);
        Assert.Equal("A (U+0041)", Glyph.ClassNames[32]);
    }

    [Theory]
    [InlineData("7", 7)]
    [InlineData("0", 0)]
    [InlineData("+3", 3)]
    public void An_integer_is_an_id(string text, int id) => Assert.Equal(id, Find(Fmnist, text));

    [Theory]
    [InlineData("10")]
    [InlineData("-1")]
    [InlineData("99999999999999999")]
    public void An_integer_outside_the_classes_is_out_of_range(string text) =>
        Assert.Equal(ClassLookup.OutOfRange, Fmnist.FindClass(text, out _));

    [Fact]
    public void A_digit_character_is_an_id_and_its_code_point_is_the_character()
    {
        Assert.Equal(1, Find(Glyph, "1"));
        Assert.Equal("1 (U+0031)", Glyph.ClassNames[Find(Glyph, "U+0031")]);
    }

    [Fact]
    public void A_full_name_matches_exactly_then_case_insensitively()
    {
        Assert.Equal(7, Find(Fmnist, "Sneaker"));
        Assert.Equal(7, Find(Fmnist, "sneaker"));
        Assert.Equal(9, Find(Fmnist, "ANKLE BOOT"));
        Assert.Equal(207, Find(Glyph, "ĳ (U+0133)"));
        Assert.Equal(207, Find(Glyph, "ĳ (u+0133)"));
    }

    [Fact]
    public void Exact_full_name_wins_over_a_case_insensitive_one()
    {
        var spec = Spec("m", ["bag", "Bag"]);
        Assert.Equal(1, Find(spec, "Bag"));
        Assert.Equal(0, Find(spec, "bag"));
        Assert.Equal(0, Find(spec, "BAG"));
    }

    [Fact]
    public void A_character_matches_case_sensitively()
    {
        Assert.Equal("a (U+0061)", Glyph.ClassNames[Find(Glyph, "a")]);
        Assert.Equal("A (U+0041)", Glyph.ClassNames[Find(Glyph, "A")]);
        Assert.Equal(207, Find(Glyph, "ĳ"));
        Assert.Equal("Ĳ (U+0132)", Glyph.ClassNames[Find(Glyph, "Ĳ")]);
        Assert.Equal("ß (U+00DF)", Glyph.ClassNames[Find(Glyph, "ß")]);
        Assert.Equal("( (U+0028)", Glyph.ClassNames[Find(Glyph, "(")]);
        Assert.Equal("- (U+002D)", Glyph.ClassNames[Find(Glyph, "-")]);
        Assert.Equal("+ (U+002B)", Glyph.ClassNames[Find(Glyph, "+")]);
    }

    [Theory]
    [InlineData("U+0133", 207)]
    [InlineData("u+0133", 207)]
    [InlineData("U+0041", 32)]
    [InlineData("U+00e4", 129)]
    public void A_code_point_matches_case_insensitively(string text, int id)
    {
        Assert.Equal(id, Find(Glyph, text));
        Assert.EndsWith($"({text.ToUpperInvariant()})", Glyph.ClassNames[id], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("U+00D7")]
    [InlineData("U+133")]
    [InlineData("×")]
    [InlineData("ab")]
    [InlineData("(U+0133)")]
    [InlineData("Sneaker")]
    public void Anything_else_is_unknown(string text) => Assert.Equal(ClassLookup.Unknown, Glyph.FindClass(text, out _));

    [Fact]
    public void Characters_and_code_points_are_read_only_from_names_of_that_form()
    {
        Assert.Equal(ClassLookup.Unknown, Fmnist.FindClass("U+0041", out _));
        Assert.Equal(ClassLookup.Unknown, Fmnist.FindClass("T", out _));
        Assert.False(CodePointName.TrySplit("Sneaker", out _, out _));
        Assert.False(CodePointName.TrySplit(" (U+0041)", out _, out _));
        Assert.False(CodePointName.TrySplit("a (U+00e4)", out _, out _));
        Assert.True(CodePointName.TrySplit("😀 (U+1F600)", out var text, out var codePoint));
        Assert.Equal(("😀", "U+1F600"), (text, codePoint));
    }
}
