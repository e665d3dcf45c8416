using MaskRcnn.Net.Core.NN;

namespace MaskRcnn.Net.Core.Tests.NN;

public class ModuleTests
{
    private sealed class Block : Module
    {
        public Block()
        {
            Conv = RegisterModule("conv", new Conv2d(3, 4, 3, padding: 1, bias: false));
            Bn = RegisterModule("bn", new BatchNorm2d(4));
            Heads = RegisterModule("heads", new ModuleList<Linear>([new Linear(4, 2), new Linear(2, 1)]));
            Scale = RegisterParameter("scale", Tensor.Ones([1]));
            RegisterBuffer("cache", Tensor.Zeros([2]), persistent: false);
        }

        public Conv2d Conv { get; }

        public BatchNorm2d Bn { get; }

        public ModuleList<Linear> Heads { get; }

        public Tensor Scale { get; }

        public Tensor Forward(Tensor x)
        {
            var y = Bn.Forward(Conv.Forward(x)).Relu().Mean([2, 3]);
            return Heads[1].Forward(Heads[0].Forward(y)) * Scale;
        }
    }

    [Fact]
    public void State_dict_keys_are_dotted_paths_in_registration_order()
    {
        using var m = new Block();
        m.StateDict().Select(kv => kv.Key).Should().Equal(
            "scale", "conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
            "heads.0.weight", "heads.0.bias", "heads.1.weight", "heads.1.bias");
        m.NamedBuffers().Select(b => b.Name).Should().Contain("cache", "non-persistent buffers are still buffers");
        m.ParameterCount().Should().Be(1 + 4 * 3 * 9 + 4 + 4 + 4 * 2 + 2 + 2 + 1);
    }

    [Fact]
    public void LoadStateDict_round_trips_and_strict_errors_name_key_and_shapes()
    {
        using var a = new Block();
        using var b = new Block();
        using var scope = Torch.NewDisposeScope();
        var sd = a.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        b.LoadStateDict(sd);
        foreach (var (k, v) in b.StateDict())
        {
            v.ToArray<double>().Should().Equal(sd[k].ToArray<double>(), k);
        }

        var wrong = new Dictionary<string, Tensor>(sd) { ["heads.0.weight"] = Tensor.Zeros([3, 4]) };
        FluentActions.Invoking(() => b.LoadStateDict(wrong)).Should().Throw<CheckpointMismatchException>()
            .WithMessage("*heads.0.weight*[3, 4]*[2, 4]*");
        var missing = new Dictionary<string, Tensor>(sd);
        missing.Remove("bn.running_var");
        missing["extra.weight"] = Tensor.Zeros([1]);
        var ex = FluentActions.Invoking(() => b.LoadStateDict(missing)).Should().Throw<CheckpointMismatchException>().Which;
        ex.MissingKeys.Should().Equal("bn.running_var");
        ex.UnexpectedKeys.Should().Equal("extra.weight");
        var result = b.LoadStateDict(missing, strict: false);
        result.MissingKeys.Should().Equal("bn.running_var");
        result.UnexpectedKeys.Should().Equal("extra.weight");
    }

    [Fact]
    public void Train_eval_freeze_and_dtype_conversion()
    {
        using var m = new Block();
        using var scope = Torch.NewDisposeScope();
        m.IsTraining.Should().BeTrue();
        m.Eval();
        m.NamedModules().Should().OnlyContain(x => !x.Module.IsTraining);
        var x = Tensor.Randn([2, 3, 5, 5]);
        var evalOut = m.Forward(x).ToArray<float>();
        m.Bn.NumBatchesTracked.ItemLong().Should().Be(0, "eval mode does not touch running statistics");
        m.Train();
        m.Forward(x);
        m.Bn.NumBatchesTracked.ItemLong().Should().Be(1);

        m.Freeze();
        m.TrainableParameters().Should().BeEmpty();
        m.Unfreeze();
        m.TrainableParameters().Count().Should().Be(8, "scale, conv weight, bn weight+bias, two linear weight+bias");

        var weight = m.Conv.Weight;
        m.To(DType.Float64);
        m.Conv.Weight.Should().BeSameAs(weight, "To() keeps tensor identity");
        weight.DType.Should().Be(DType.Float64);
        m.Bn.NumBatchesTracked.DType.Should().Be(DType.Int64, "integer buffers keep their dtype");
        m.Eval();
        m.Forward(x.To(DType.Float64)).ToArray<double>().Select(v => (float)v).Should().HaveCount(evalOut.Length);
    }

    [Fact]
    public void Gradients_flow_to_every_parameter()
    {
        using var m = new Block();
        using var scope = Torch.NewDisposeScope();
        m.Forward(Tensor.Randn([2, 3, 5, 5])).Sum().Backward();
        foreach (var (name, p) in m.NamedParameters())
        {
            p.Grad.Should().NotBeNull(name);
        }

        m.ZeroGrad();
        m.Parameters().Should().OnlyContain(p => p.Grad == null);
    }
}
